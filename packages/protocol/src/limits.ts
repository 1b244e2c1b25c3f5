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

/**
 * How long a skipped message key is kept: 30 days after the decrypt that stored it. A skipped
 * key waits for a message that was overtaken by a later one, normally for seconds (a retry, a
 * slower path); one that has waited weeks is most likely for a message that will never come,
 * and until it goes it is exactly what forward secrecy should not leave lying around: a stolen
 * store opens that message. The clock is the receiver's and keeps running while its device is
 * off, though, and the relay keeps queued envelopes until they are acked, with no time limit:
 * a device back after N days drains a straggler then. Thirty days covers a long absence (and
 * matches the signed-prekey grace for late first messages); the count caps still bound memory
 * on their own. Expired keys answer `MESSAGE_KEY_EXPIRED`.
 */
export const SKIPPED_KEY_TTL_MS = 30 * 24 * 3600 * 1000;

/**
 * Ranges of evicted counters a chain remembers, so that a counter whose key was dropped unused
 * answers `MESSAGE_KEY_EXPIRED` and one whose key was consumed answers `DUPLICATE_MESSAGE`.
 * Eviction takes a chain's oldest keys first, so the record is one range unless messages were
 * consumed in between; beyond 32 ranges (8 bytes each in the pickle) the two closest merge and
 * the consumed counters between them answer `MESSAGE_KEY_EXPIRED` as well.
 */
export const MAX_EVICTED_RANGES = 32;

/**
 * Header stages a session keeps in memory (never pickled) for the state it has now, keyed by the
 * exact authenticated prefix: a genuine header replayed under forged bodies costs its DH step
 * and chain skips once, not once per forgery (docs/threats.md C8). Four cover the few distinct
 * expensive headers an honest peer sends before we commit one; each holds at most 2 × MAX_SKIP
 * derived keys (64 KB) until the next commit. More distinct genuine headers, replayed in turn,
 * each cost their DH step again.
 */
export const HEADER_CACHE_ENTRIES = 4;

/** Largest plaintext one message may carry; the padded envelope stays under the relay's 64 KiB cap. */
export const MAX_PLAINTEXT_BYTES = 60_000;

/**
 * How long a retired signed prekey (SPK) still accepts first messages after `rotateSignedPrekey`
 * replaced it: 30 days. The relay keeps queued envelopes until the recipient acks them, with no
 * time limit (packages/relay/README.md: "The relay deletes a message only on the recipient's
 * ack"), so no grace can outlast the relay queue. It does not need to for the recipient: an SPK
 * is retired only while its device is online (rotation runs when it publishes prekeys, at every
 * login), and that same login drains the queue. The grace covers the other side: a sender who
 * fetched the bundle before the rotation and sends late (an offline outbox), or a device that
 * goes offline right after rotating. Thirty days is four SPK periods of the engine's 7-day
 * rotation. After it the SPK is deleted with its base keys (C6): a first message naming it is
 * refused (`INVALID_PREKEY`, reason `retired`) and the sender must fetch a fresh bundle.
 */
export const SIGNED_PREKEY_GRACE_MS = 30 * 24 * 3600 * 1000;

/**
 * Base keys of accepted first messages one SPK remembers, to refuse X3DH replays (C6). Never
 * evicted: an SPK whose set is full refuses new first messages (`INVALID_PREKEY`, reason
 * `full`) instead of forgetting. 10,000 is a new session every minute for a whole 7-day SPK
 * period (10,080 minutes); busier devices rotate early ({@link SIGNED_PREKEY_ROTATE_AT_BASE_KEYS}).
 * Stored as 16-byte digests: 160 KB per full SPK in the account pickle.
 */
export const MAX_BASE_KEYS_PER_SIGNED_PREKEY = 10_000;

/**
 * Base keys on the current SPK at which the account reports that rotation is due
 * (`Account.signedPrekeyRotationDue`): half of {@link MAX_BASE_KEYS_PER_SIGNED_PREKEY}, so
 * 5,000 more first messages still open between the signal and the refusal, more than a device
 * accepts between two prekey publishes (hourly, at login, at every low-supply notice).
 */
export const SIGNED_PREKEY_ROTATE_AT_BASE_KEYS = 5_000;

/**
 * Signed prekeys an account keeps (the current one plus retired ones in their grace). Bounds the
 * account pickle to 8 × 160 KB of base keys. The 7-day rotation keeps at most 6 (30 days of
 * grace); a device that rotates faster than every ~4 days loses its oldest retired SPK early,
 * which only refuses its late first messages (`retired`), never accepts a replay.
 */
export const MAX_SIGNED_PREKEYS = 8;
