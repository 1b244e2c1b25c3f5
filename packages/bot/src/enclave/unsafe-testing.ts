/**
 * `unsafeTestingExposeKeys`: a TEST-ONLY hook that lets a leak test learn the enclave's secret
 * bytes, so it can scan the host for them. Runs only inside the enclave, and only when the host
 * passed a `MessagePort` in `init` (`createBotForTesting` hook `unsafeTestingExposeKeys`). The
 * records are read with the protocol's own unpicklers (`@parley/protocol/testing`), never a copy of
 * the pickle format.
 *
 * The secrets never go through the host: they are posted on the test's own port, and only when
 * the test asks (`'dump'`), so a test can take its host heap snapshot first and only then receive
 * them. The tap collects, at every commit, the private keys in the account record (identity,
 * signed and one-time prekeys) and in every session record (root, chain, header and skipped
 * message keys, ratchet private key), plus the sealing secret and the state key. Keys that were
 * replaced are kept, so old chain keys are scanned for too.
 *
 * Not in the published build (issue 10, Low 11; docs/threats.md B1): the tap refuses to exist
 * unless this module runs from the repository's TypeScript sources (through tsx, as the SDK's
 * tests do). The published package runs the compiled `dist/enclave/*.js`, whose measured code
 * refuses the hook with `FORBIDDEN`; a bot run from the sources has the sources' measurement,
 * which never equals a measurement pinned for the published package (README "Measurement").
 */
import type { MessagePort } from 'node:worker_threads';
import { Account, ParleyError, Session, toHex } from '@parley/protocol';
import { unsafeTestingAccountSecrets, unsafeTestingSessionSecrets } from '@parley/protocol/testing';
import type { SealedKeyValueStore } from './sealed-store.js';

/** The secrets of one stored record, read with the protocol's own unpicklers. */
function recordSecrets(key: string, value: Uint8Array): Uint8Array[] | undefined {
  if (key === 'account') {
    const account = Account.unpickle(value);
    try {
      return unsafeTestingAccountSecrets(account);
    } finally {
      account.dispose();
    }
  }
  if (!key.startsWith('session/')) return undefined;
  const session = Session.unpickle(value);
  try {
    return unsafeTestingSessionSecrets(session);
  } finally {
    session.dispose();
  }
}

/**
 * True when the enclave runs from TypeScript sources (`.ts` modules: the repository's tests), the
 * only form in which the key-exposing hook exists.
 */
export function unsafeTestingHooksAvailable(): boolean {
  return /\.(ts|mts)$/.test(new URL(import.meta.url).pathname);
}

export class TestingKeyTap {
  readonly #secrets = new Map<string, Uint8Array>();
  #parsedAccounts = 0;
  #parsedSessions = 0;
  #parseFailures = 0;

  /** @throws ParleyError `FORBIDDEN` in the published build (compiled `.js`): the hook does not exist there. */
  constructor(port: MessagePort, initial: Uint8Array[]) {
    if (!unsafeTestingHooksAvailable()) {
      throw new ParleyError(
        'FORBIDDEN',
        "unsafeTestingExposeKeys does not exist in the published build of @parley/bot: the enclave's key-exposing test hook works only when the enclave runs from the repository's TypeScript sources (whose measurement differs from the published build's). Remove the hook",
        { details: { reason: 'testingHookInPublishedBuild' } },
      );
    }
    for (const s of initial) this.#add(s);
    port.on('message', (m: unknown) => {
      if (m !== 'dump') return;
      port.postMessage({
        secrets: [...this.#secrets.values()],
        parsedAccounts: this.#parsedAccounts,
        parsedSessions: this.#parsedSessions,
        parseFailures: this.#parseFailures,
      });
    });
    port.unref();
  }

  #add(s: Uint8Array): void {
    if (s.some((x) => x !== 0)) this.#secrets.set(toHex(s), s.slice());
  }

  /** Collects the secrets in the store's records now, and in every record committed later. */
  attach(store: SealedKeyValueStore): void {
    this.#observe(store.unsafeTestingEntries());
    store.unsafeTestingOnCommit = (entries) => this.#observe(entries);
  }

  #observe(entries: Iterable<[string, Uint8Array]>): void {
    for (const [key, value] of entries) {
      try {
        const secrets = recordSecrets(key, value);
        if (!secrets) continue;
        for (const s of secrets) this.#add(s);
        if (key === 'account') this.#parsedAccounts++;
        else this.#parsedSessions++;
      } catch {
        this.#parseFailures++;
      }
    }
  }
}
