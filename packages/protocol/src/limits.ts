/**
 * Protocol limits, named with the reason for each value (docs/threats.md section c).
 */

/**
 * Most message keys one chain may skip in a single step (Double Ratchet spec MAX_SKIP).
 * Stricter than libsignal's 25,000 and vodozemac's 2,000: support chats are short, and a
 * header beyond it is refused before any key derivation.
 */
export const MAX_SKIP = 1000;

/** Most skipped message keys a session keeps across all chains; the oldest are evicted first. */
export const MAX_STORED_SKIPPED_KEYS = 2000;

/**
 * Most receiving chains with stored skipped keys. Bounds the trial decryptions of a header
 * that decrypts under no key to MAX_SKIPPED_CHAINS + 2.
 */
export const MAX_SKIPPED_CHAINS = 5;

/**
 * Headers of the last messages received on the current chain, remembered so a repeated
 * counter can be told apart: same header bytes = replay (`DUPLICATE_MESSAGE`), new header
 * bytes for a used counter = the sender's state was rolled back (`SENDER_STATE_ROLLBACK`).
 */
export const RECENT_HEADERS = 32;

/** Largest plaintext one message may carry; the padded envelope stays under the relay's 64 KiB cap. */
export const MAX_PLAINTEXT_BYTES = 60_000;

/** Base keys of accepted prekey messages an account remembers, to refuse X3DH replays (C6). */
export const MAX_REMEMBERED_BASE_KEYS = 1000;
