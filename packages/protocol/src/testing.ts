/**
 * `@parley/protocol/testing`: TEST ONLY. Copies of the private keys and session secrets a live
 * object holds, so leak tests can scan memory, storage and logs for them. Never import it in
 * production code: what it returns defeats the protocol.
 */
import { Account, accountSecrets } from './account.js';
import { Session, liveSessionSecrets, sessionSecrets } from './session.js';

/** Every private key of `account` (identity, signed and one-time prekeys), copied. */
export function unsafeTestingAccountSecrets(account: Account): Uint8Array[] {
  return accountSecrets(account);
}

/** Every secret of `session`'s state (root, chain and header keys, ratchet key, skipped keys), copied. */
export function unsafeTestingSessionSecrets(session: Session): Uint8Array[] {
  return sessionSecrets(session);
}

/**
 * The live secret arrays (not copies) of `session`'s state, and of the header stages it keeps in
 * memory for a repeated header. Wipe tests hold them across an operation to check that what the
 * new state no longer references was zero-filled. Writing to them corrupts the session.
 */
export function unsafeTestingLiveSessionSecrets(session: Session): { state: Uint8Array[]; headerCache: Uint8Array[] } {
  return liveSessionSecrets(session);
}
