/** Test helpers: engines that talk directly, with a tiny in-memory "relay" of their own. */
import assert from 'node:assert/strict';
import { initCrypto, isParleyError, type ParleyErrorCode, type PrekeyBundle, type PrekeyUpload } from '@parley/protocol';
import { ConversationEngine, MemoryStore, type EngineOptions, type OutgoingEnvelope } from '../../src/index.js';

let ready: Promise<unknown> | undefined;
/** Loads the crypto backend once. */
export function setupCrypto(): Promise<unknown> {
  ready ??= initCrypto();
  return ready;
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A bundle the way a relay would build it from an upload, taking one OPK. */
export function takeBundle(upload: PrekeyUpload, extras: { certificate?: Uint8Array } = {}): PrekeyBundle & { certificate?: Uint8Array } {
  const opk = (upload.oneTimePrekeys as { id: number; publicKey: Uint8Array }[]).shift();
  const b: PrekeyBundle = opk
    ? { identity: upload.identity, signedPrekey: upload.signedPrekey, oneTimePrekey: opk }
    : { identity: upload.identity, signedPrekey: upload.signedPrekey };
  return extras.certificate ? { ...b, certificate: extras.certificate } : b;
}

/** An engine on its own MemoryStore, plus its published upload. */
export async function device(options: Partial<EngineOptions> = {}) {
  const store = (options.store as MemoryStore | undefined) ?? new MemoryStore();
  const engine = await ConversationEngine.open({ ...options, store });
  const upload = await engine.prekeyUpload(10);
  await engine.markUploaded(upload.oneTimePrekeys.map((k) => k.id));
  return { engine, store, upload: { ...upload, oneTimePrekeys: [...upload.oneTimePrekeys] } };
}

let counter = 0;
export const mid = (): string => `m${++counter}-${Math.random().toString(36).slice(2, 10)}`;

/** Hands an outgoing envelope to the receiving engine, as the relay would. */
export function deliver(to: ConversationEngine, from: ConversationEngine, out: OutgoingEnvelope) {
  return to.receive({ from: from.deviceId, id: out.id, envelope: out.envelope });
}

export const DAY = 24 * 3600 * 1000;
/** A fixed "now" for certificate and attestation expiry tests. */
export const T0 = Date.UTC(2030, 0, 1);

/** An `assert.rejects`/`assert.throws` matcher: a ParleyError with this code (and `details.reason`). */
export function refused(code: ParleyErrorCode, reason?: string) {
  return (e: unknown) => {
    assert.ok(isParleyError(e), `expected ParleyError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (reason) assert.equal(e.details?.reason, reason);
    return true;
  };
}
