/**
 * Publishes the bot's prekeys with its current statements (attestation, org certificate, release
 * manifests): the enclave generates the batch, the relay stores it, then the enclave marks the
 * one-time prekeys published. A call while an upload runs (a fresh attestation, a low-supply notice) makes it run
 * once more afterwards, so the latest statements are the ones published. Runs in the host: it
 * only ever holds public keys and public statements.
 */
import type { PrekeyUpload } from '@parley/protocol/verify';
import { toWireError } from '../rpc/messages.js';
import type { BotLogger } from './supervisor.js';

/** The statements published beside the prekeys (wire `DeviceStatements`). */
export interface PublishedStatements {
  attestation?: Uint8Array;
  certificate?: Uint8Array;
  /** The release manifest list (`encodeReleaseManifestList`); empty removes the relay's. */
  manifests?: Uint8Array;
}

export interface PrekeyPublisherOptions {
  /** Asks the enclave for a batch (its signed prekey and fresh one-time prekeys). */
  generate(): Promise<PrekeyUpload>;
  /** Uploads a batch with the statements to publish beside it. */
  upload(batch: PrekeyUpload & PublishedStatements): Promise<unknown>;
  /** Tells the enclave these one-time prekeys are on the relay. */
  markPublished(ids: number[]): Promise<unknown>;
  /** The statements to publish now. */
  statements(): PublishedStatements;
  /** False while logged out: a queued re-run is dropped (the next login publishes again). */
  canPublish(): boolean;
  logger: BotLogger;
}

export class PrekeyPublisher {
  readonly #opts: PrekeyPublisherOptions;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(options: PrekeyPublisherOptions) {
    this.#opts = options;
  }

  /** Publishes now, or once more after the upload in progress. Never rejects (failures are logged). */
  publish(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#run().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #run(): Promise<void> {
    try {
      do {
        this.#again = false;
        const batch = await this.#opts.generate();
        await this.#opts.upload({ ...batch, ...this.#opts.statements() });
        if (batch.oneTimePrekeys.length > 0) await this.#opts.markPublished(batch.oneTimePrekeys.map((k) => k.id));
      } while (this.#again && this.#opts.canPublish());
    } catch (e) {
      this.#opts.logger.warn({ event: 'prekeys.uploadFailed', error: toWireError(e) }, 'prekey upload failed');
    }
  }
}
