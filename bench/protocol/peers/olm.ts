/**
 * Adapter for `@matrix-org/olm` 3.2.15 (libolm compiled to WASM by emscripten), through its
 * public JS API. Its API is string-based: plaintexts go in as JS strings and ciphertexts come
 * out base64-encoded; that encoding is part of what every libolm-on-JS app pays, so it is
 * timed.
 *
 * Olm has no signed prekey. A Matrix "bundle" is a `signed_curve25519` one-time key that
 * Bob's device signs with its Ed25519 key and the sender verifies before
 * `create_outbound` (Matrix clients do that check outside libolm). We do the same: Bob
 * signs each published one-time key (untimed) and Alice verifies the signature (timed), so
 * every implementation does one signature check per establishment. Olm's handshake is then a
 * triple DH (identity + one-time key), one DH fewer than X3DH.
 */
import Olm from '@matrix-org/olm';
import { MESSAGE_BYTES, type Pair, type Peer } from '../adapter.js';

/** libolm derives the pickle's AES-256-CBC + HMAC keys from this; any fixed value will do. */
const PICKLE_KEY = 'parley-bench-pickle-key';

const PLAINTEXT = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.repeat(4).slice(0, MESSAGE_BYTES);

function expect(got: string): void {
  if (got !== PLAINTEXT) throw new Error(`round trip failed: got ${got.length} chars`);
}

interface Identity {
  curve25519: string;
  ed25519: string;
}

export function createOlmPeer(): Peer {
  let alice!: Olm.Account;
  let bob!: Olm.Account;
  let bobKeys!: Identity;
  let util!: Olm.Utility;

  /** Bob publishes `n` signed one-time keys (libolm keeps at most ~100 unpublished). */
  function publish(n: number): { key: string; signature: string }[] {
    bob.generate_one_time_keys(n);
    const otks = Object.values((JSON.parse(bob.one_time_keys()) as { curve25519: Record<string, string> }).curve25519);
    bob.mark_keys_as_published();
    return otks.map((key) => ({ key, signature: bob.sign(key) }));
  }

  /** Alice verifies the bundle, creates her session and sends; Bob creates his from it. */
  function establish(bundle: { key: string; signature: string }): { a: Olm.Session; b: Olm.Session } {
    util.ed25519_verify(bobKeys.ed25519, bundle.key, bundle.signature); // throws if bad
    const a = new Olm.Session();
    a.create_outbound(alice, bobKeys.curve25519, bundle.key);
    const first = a.encrypt(PLAINTEXT);
    if (first.type !== 0) throw new Error('expected a prekey message');
    const b = new Olm.Session();
    b.create_inbound(bob, first.body);
    bob.remove_one_time_keys(b);
    expect(b.decrypt(0, first.body));
    return { a, b };
  }

  return {
    name: 'olm (WASM)',
    notes: [
      'libolm 3.2.15 via emscripten WASM; string API (base64 ciphertexts) — the encoding is timed',
      'no signed prekey: triple DH with a signed one-time key; Alice verifies its Ed25519 signature as Matrix clients do',
    ],

    async setup() {
      await Olm.init();
      alice = new Olm.Account();
      alice.create();
      bob = new Olm.Account();
      bob.create();
      bobKeys = JSON.parse(bob.identity_keys()) as Identity;
      util = new Olm.Utility();
    },

    async prepareEstablish(n) {
      const max = Math.floor(bob.max_number_of_one_time_keys() / 2);
      const bundles: { key: string; signature: string }[] = [];
      while (bundles.length < n) bundles.push(...publish(Math.min(max, n - bundles.length)));
      return async () => {
        for (const bundle of bundles) {
          const { a, b } = establish(bundle);
          a.free();
          b.free();
        }
      };
    },

    async makePair(): Promise<Pair> {
      const [bundle] = publish(1);
      const { a, b } = establish(bundle!);
      const reply = b.encrypt(PLAINTEXT);
      expect(a.decrypt(reply.type, reply.body));
      const sessions = [a, b] as const;
      let turn: 0 | 1 = 0;
      function send(from: 0 | 1): void {
        const m = sessions[from].encrypt(PLAINTEXT);
        if (m.type !== 1) throw new Error('expected a normal message');
        expect(sessions[from === 0 ? 1 : 0].decrypt(m.type, m.body));
      }
      return {
        async oneDirection(n) {
          for (let i = 0; i < n; i++) send(0);
        },
        async pingPong(n) {
          for (let i = 0; i < n; i++) {
            send(turn);
            turn = turn === 0 ? 1 : 0;
          }
        },
        sessionSize() {
          // The pickle is unpadded base64 of (version, state, AES-CBC padding, 8-byte MAC).
          return Buffer.from(a.pickle(PICKLE_KEY), 'base64').length;
        },
        async loadIdle(n) {
          const pickle = a.pickle(PICKLE_KEY);
          const held: Olm.Session[] = [];
          for (let i = 0; i < n; i++) {
            const s = new Olm.Session();
            s.unpickle(PICKLE_KEY, pickle);
            held.push(s);
          }
          return {
            release() {
              for (const s of held) s.free();
              held.length = 0;
            },
          };
        },
        free() {
          a.free();
          b.free();
        },
      };
    },
  };
}
