/**
 * The one small interface every benchmarked implementation adapts to.
 *
 * The runner never sees keys, stores or wire types: an adapter hands back closures and
 * pairs, and the runner only times them. That keeps the definition of each case in one
 * place (here) and identical across implementations:
 *
 * - **Establishment** (`prepareEstablish` + the closure it returns): Bob already has a
 *   long-term identity and a signed prekey (made in `setup`), and before the clock starts he
 *   generates `n` one-time prekeys and publishes `n` bundles (one per one-time prekey). Alice's
 *   long-term identity also exists already. Timed, per establishment: Alice processes one
 *   bundle (verifying what the protocol verifies), encrypts a first 100-byte message, Bob
 *   decrypts it, creating his session and consuming the one-time prekey; then both sessions
 *   are dropped. One-time prekey generation is therefore OUTSIDE the timed region for every
 *   implementation.
 * - **One direction** (`Pair.oneDirection`): on a pair that has done one round trip, Alice
 *   encrypts a 100-byte message and Bob decrypts it, `n` times, no replies, so no DH ratchet
 *   step (apart from the first message of a fresh pair). One op = one encrypt + one decrypt.
 * - **Ping-pong** (`Pair.pingPong`): strict alternation A→B, B→A, …, so every message carries
 *   a new ratchet key and its receiver does a DH ratchet step. One op = one message.
 */

/** Size of every benchmarked plaintext, in bytes. */
export const MESSAGE_BYTES = 100;

/** An established pair (Alice and Bob, after one round trip). */
export interface Pair {
  /** `n` messages Alice → Bob, each decrypted at once; no replies. */
  oneDirection(n: number): Promise<void>;
  /** `n` messages in strict alternation, starting with Alice. */
  pingPong(n: number): Promise<void>;
  /** Serialised bytes of Alice's session as the implementation persists it. */
  sessionSize(): number;
  /**
   * `n` copies of Alice's session, rebuilt from its serialised form and held in memory as the
   * implementation's live session object; `release` drops them (and frees native/WASM memory).
   */
  loadIdle(n: number): Promise<{ release(): void }>;
  /** Frees the pair (olm needs this; a no-op elsewhere). */
  free(): void;
}

export interface Peer {
  /** Column name in the report, e.g. `parley (node)`. */
  readonly name: string;
  /** What differs from our protocol and affects the numbers (shown under the table). */
  readonly notes: readonly string[];
  /** Long-term identities for Alice and Bob, Bob's signed prekey, library init. Untimed. */
  setup(): Promise<void>;
  /**
   * Untimed: Bob generates `n` one-time prekeys and publishes `n` bundles. Returns the timed
   * part, which runs exactly `n` establishments (see the module comment).
   */
  prepareEstablish(n: number): Promise<() => Promise<void>>;
  /** An established pair after one round trip (Alice → Bob prekey message, Bob → Alice). */
  makePair(): Promise<Pair>;
}

/** A fixed 100-byte plaintext. */
export function message(): Uint8Array<ArrayBuffer> {
  const m = new Uint8Array(MESSAGE_BYTES);
  for (let i = 0; i < m.length; i++) m[i] = 0x41 + (i % 26);
  return m;
}

/** Throws when a decrypted message differs from what was sent: a bench that measures a broken
 * round trip measures nothing. Checked on every message (a cheap length + first/last byte
 * check) and fully on the first one of each call. */
export function check(got: Uint8Array, want: Uint8Array, full: boolean): void {
  if (got.length !== want.length || got[0] !== want[0] || got[got.length - 1] !== want[want.length - 1]) {
    throw new Error(`round trip failed: got ${got.length} bytes, want ${want.length}`);
  }
  if (full) {
    for (let i = 0; i < want.length; i++) {
      if (got[i] !== want[i]) throw new Error(`round trip failed at byte ${i}`);
    }
  }
}
