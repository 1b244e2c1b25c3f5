/**
 * One relay delivery handed to the enclave (docs/threats.md I4/I5, B2). The enclave decrypts it
 * and commits session + dedupe + the plaintext for the handler in one sealed batch; only once
 * that batch is durable does the call resolve, and only then may the host ack the relay. The
 * call is retried across enclave restarts (the caller holds back this sender's later messages,
 * so a conversation stays in order); a duplicate comes back as `duplicate` from the engine.
 * Runs in the host: it only ever holds the ciphertext envelope.
 */
import { isParleyError } from '@parley/protocol/verify';
import type { RelayMessage } from '@parley/protocol/wire';
import { toWireError } from '../rpc/messages.js';
import type { BotLogger, EnclaveSupervisor } from './supervisor.js';
import { isTransient } from './transient.js';

/** Attempts to hand one envelope to the enclave across restarts before leaving it to the relay. */
export const DELIVERY_ATTEMPTS = 20;

/**
 * Delivers `m` to the enclave. `ack`: committed by the enclave, or refused for good (logged);
 * `keep`: not now (enclave down, host stopping), so the relay keeps it and pushes it again.
 */
export async function deliverToEnclave(
  supervisor: EnclaveSupervisor,
  m: RelayMessage,
  options: { logger: BotLogger; stopped: () => boolean },
): Promise<'ack' | 'keep'> {
  if (typeof m !== 'object' || m === null || !Number.isSafeInteger(m.seq) || typeof m.from !== 'string') {
    options.logger.warn({ event: 'relay.badMessage' }, 'ignored a malformed relay message');
    return 'keep';
  }
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await supervisor.call('deliver', { from: m.from, id: m.id, envelope: m.envelope });
        return 'ack';
      } catch (e) {
        if (!isParleyError(e, 'ENCLAVE_UNAVAILABLE') || options.stopped() || attempt >= DELIVERY_ATTEMPTS) throw e;
        await supervisor.whenReady();
      }
    }
  } catch (e) {
    if (isTransient(e)) return 'keep';
    options.logger.warn({ event: 'deliver.rejected', from: m.from, id: m.id, error: toWireError(e) }, 'dropped an envelope the enclave refused');
    return 'ack';
  }
}
