/**
 * Adapter for our own protocol (`@parley/protocol`), one instance per crypto backend:
 * `node` (the default in Node: node:crypto curves + libsodium AEAD), `sodium` (libsodium
 * WASM), `noble` (pure JS). Same public API an app uses; nothing reaches into internals.
 */
import { initCrypto, Account, Session } from '@parley/protocol';
import { check, message, type Pair, type Peer } from './adapter.js';

export type Backend = 'node' | 'sodium' | 'noble';

export function createParleyPeer(backend: Backend): Peer {
  let alice!: Account;
  let bob!: Account;
  const plaintext = message();

  function establish(bundle: ReturnType<Account['bundle']>): { a: Session; b: Session } {
    const a = alice.createOutboundSession(bundle);
    const wire = a.encrypt(plaintext);
    const { session: b, plaintext: got } = bob.createInboundSession(wire);
    check(got, plaintext, false);
    return { a, b };
  }

  /** Bob publishes `n` bundles, each around a fresh one-time prekey (untimed part). */
  function publish(n: number): ReturnType<Account['bundle']>[] {
    const otks = bob.generateOneTimePrekeys(n);
    return otks.map((k) => bob.bundle(k.id));
  }

  return {
    name: backend === 'node' ? 'parley (node, default)' : `parley (${backend})`,
    notes: [],

    async setup() {
      await initCrypto(backend);
      alice = Account.create();
      bob = Account.create();
    },

    async prepareEstablish(n) {
      const bundles = publish(n);
      return async () => {
        for (const bundle of bundles) establish(bundle);
      };
    },

    async makePair(): Promise<Pair> {
      const [bundle] = publish(1);
      const { a, b } = establish(bundle!);
      check(a.decrypt(b.encrypt(plaintext)), plaintext, true); // one round trip
      const sessions = [a, b] as const;
      let turn: 0 | 1 = 0;
      function send(from: 0 | 1, full: boolean): void {
        const wire = sessions[from].encrypt(plaintext);
        check(sessions[from === 0 ? 1 : 0].decrypt(wire), plaintext, full);
      }
      return {
        async oneDirection(n) {
          for (let i = 0; i < n; i++) send(0, i === 0);
        },
        async pingPong(n) {
          for (let i = 0; i < n; i++) {
            send(turn, i === 0);
            turn = turn === 0 ? 1 : 0;
          }
        },
        sessionSize() {
          return a.pickle().length;
        },
        async loadIdle(n) {
          const bytes = a.pickle();
          let held: Session[] = [];
          for (let i = 0; i < n; i++) held.push(Session.unpickle(bytes));
          return {
            release() {
              held = [];
            },
          };
        },
        free() {},
      };
    },
  };
}
