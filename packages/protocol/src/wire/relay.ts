/**
 * The relay protocol: socket.io events between a device (client or bot host) and the relay.
 *
 * This file is the contract. The relay validates every payload against it and the client SDK is
 * written against it. It is pure data and one pure encoder ({@link relayAuthPayload}); nothing
 * here touches keys.
 *
 * Binary fields are `Uint8Array` on the wire (socket.io carries binary natively; in Node they
 * arrive as `Buffer`, a `Uint8Array` subclass). Device ids are 32 lower-case hex characters
 * (`deviceIdOf(identity)`). Every client event takes exactly one payload object and an ack
 * callback; every ack is a {@link RelayResult}. Payload objects are strict: unknown keys are
 * rejected with `MALFORMED_MESSAGE`.
 *
 * Sequence of a session:
 * ```
 *  client                                     relay
 *    | ---- socket.io connect -------------------> |
 *    | <--- hello { serverNonce, authTimeoutMs } -- |   fresh 32 random bytes for THIS connection
 *    | ---- auth(AuthAnswer) ---------------------> |   checks binding, signature, ±30 s, nonce, origin
 *    | <--- ack { ok, deviceId, role } ------------ |   failure: ack UNAUTHENTICATED, then disconnect
 *    | <--- message { seq, from, id, envelope } --- |   backlog pushed in seq order, then live
 *    | ---- ack({ seqs }) ------------------------> |   only now is the envelope deleted
 *    | ---- send / uploadPrekeys / fetchBundle ---> |   (also fetchIdentity, fetchQueue)
 * ```
 * Anything but `auth` before authentication gets `UNAUTHENTICATED`; repeated violations and an
 * auth timeout end in a `relayError` event and a disconnect. Register the `hello` listener
 * before the socket connects (`io(url, { autoConnect: false })`, then `socket.connect()`).
 */
import { concatBytes, fromHex, utf8 } from '../bytes.js';
import type { ErrorDetails, ParleyErrorCode } from '../errors.js';
import { ParleyError } from '../errors.js';
import type { PublicIdentity } from '../identity-public.js';
import type { PrekeyBundle, PrekeyUpload } from '../bundle.js';
import { MAX_RELEASE_MANIFEST_LIST_BYTES } from '../release-manifest.js';
import type { Ticket, TicketIdRequest, TicketListRequest, TicketOpenRequest, TicketReleaseRequest, TicketUnclaimed, TicketUpdate } from './tickets.js';

/** Version of this event contract, sent in `hello`. */
export const RELAY_PROTOCOL_VERSION = 1;

/** Bytes of the relay's and the client's auth nonces. */
export const RELAY_NONCE_BYTES = 32;

/** How far an auth timestamp may be from the relay's clock (docs/threats.md R2: TTL ≤ 30 s). */
export const RELAY_AUTH_MAX_SKEW_MS = 30_000;

/** Largest envelope the relay stores (docs/threats.md (c) "Oversize": 64 KiB). */
export const RELAY_MAX_ENVELOPE_BYTES = 64 * 1024;

/** Longest client-chosen message id. */
export const RELAY_MAX_MESSAGE_ID_LENGTH = 64;

/** Most one-time prekeys in one upload. */
export const RELAY_MAX_OPKS_PER_UPLOAD = 100;

/** Most sequence numbers in one `ack`. */
export const RELAY_MAX_ACK_BATCH = 256;

/**
 * Largest certificate statement a device may publish with its prekeys (opaque to the relay):
 * an org certificate, or a staff credential (`MAX_STAFF_CREDENTIAL_BYTES`).
 */
export const RELAY_MAX_CERTIFICATE_BYTES = 1024;

/** Largest bot attestation a device may publish with its prekeys (opaque to the relay). */
export const RELAY_MAX_ATTESTATION_BYTES = 512;

/**
 * Largest release manifest list a bot may publish with its prekeys (`encodeReleaseManifestList`:
 * at most 8 manifests of at most 1 KiB each; the relay checks the framing, not the manifests).
 */
export const RELAY_MAX_MANIFESTS_BYTES = MAX_RELEASE_MANIFEST_LIST_BYTES;

/** Largest archive disclosure a device may publish with its prekeys (opaque to the relay). */
export const RELAY_MAX_DISCLOSURE_BYTES = 1024;

/** Largest archive submission (`encodeArchiveSubmission`): the sealed payload and its framing. */
export const RELAY_MAX_ARCHIVE_SUBMISSION_BYTES = 256 * 1024 + 1024;

/** `archiveAppend` payload: the conversation's archive ref and the encoded signed submission. */
export interface ArchiveAppendRequest {
  readonly ref: string;
  readonly submission: Uint8Array;
}

/**
 * Largest staff credential in an auth answer (`encodeStaffCredential`: issuer certificate + staff
 * certificate). The relay verifies it against its org key; a longer one is `MALFORMED_MESSAGE`.
 */
export const RELAY_MAX_CREDENTIAL_BYTES = 2048;

/** Largest signed revocation list the relay accepts (`POST /v1/revocations`). */
export const RELAY_MAX_REVOCATION_LIST_BYTES = 64 * 1024;

/** Longest `AuthAnswer.origin` (a URL origin: scheme, a DNS name of up to 253 chars, a port). */
export const RELAY_MAX_ORIGIN_LENGTH = 300;

/** A device id: 32 lower-case hex chars. */
export const DEVICE_ID_PATTERN = /^[0-9a-f]{32}$/;

/** A message id: 1–64 chars of `[A-Za-z0-9_-]` (16 random bytes as hex is the convention). */
export const MESSAGE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The error half of every ack. `details` holds numbers and short public ids only. */
export interface RelayError {
  readonly code: ParleyErrorCode;
  readonly message: string;
  readonly details?: ErrorDetails;
}

/** Every ack: success with its result fields, or a typed error. */
export type RelayResult<T extends object = object> =
  | ({ readonly ok: true } & T)
  | { readonly ok: false; readonly error: RelayError };

/** Pushed by the relay right after connect. The nonce is single-use and bound to this connection. */
export interface RelayHello {
  readonly protocol: number;
  /** 32 random bytes, fresh per connection. */
  readonly serverNonce: Uint8Array;
  /** The socket is dropped if `auth` has not succeeded within this many ms. */
  readonly authTimeoutMs: number;
}

/**
 * The client's answer to `hello`. The device id is derived by the relay from `identity`;
 * it is never taken from the payload.
 */
export interface AuthAnswer {
  readonly identity: PublicIdentity;
  /** 32 random bytes chosen by the client, so the client never signs bytes the relay chose alone (C14). */
  readonly clientNonce: Uint8Array;
  /** Client clock, ms since the epoch; must be within ±30 s of the relay's clock. */
  readonly timestamp: number;
  /** Ed25519 by `identity.signingKey`, context `relayAuth`, over {@link relayAuthPayload}. */
  readonly signature: Uint8Array;
  /** Bots only: the API key issued by the relay operator. Sent over TLS; stored hashed. */
  readonly apiKey?: string;
  /**
   * The origin the device signed (the one it dialled), at most {@link RELAY_MAX_ORIGIN_LENGTH}
   * printable ASCII characters. Not secret and not trusted: the relay compares it with its own
   * origin before checking the signature, so a mismatch is refused as `UNAUTHENTICATED` with
   * `details.reason: 'origin'` (and both origins) instead of a bare bad signature. Optional for
   * older clients.
   */
  readonly origin?: string;
  /**
   * Staff devices: their staff credential (`encodeStaffCredential`), at most
   * {@link RELAY_MAX_CREDENTIAL_BYTES}. A relay with an org key verifies it against `identity` and
   * gives the connection the credential's roles; a refused one is `UNAUTHENTICATED` with reason
   * `credential` (and `credentialReason`) or `revoked`. A relay without an org key ignores it.
   */
  readonly credential?: Uint8Array;
}

/** Whether the authenticated device presented a valid API key. */
export type RelayRole = 'device' | 'bot';

/** Result of a successful `auth`. */
export interface AuthResult {
  readonly deviceId: string;
  readonly role: RelayRole;
  /** The relay's clock, ms since the epoch (lets a client see its own skew). */
  readonly serverTime: number;
  /**
   * The connection's roles at the relay: `['customer']` (no credential, no API key), `['bot']`
   * (API key), or the staff roles of the verified credential (`agent`, `supervisor`,
   * `compliance`, `admin`). Relays before staff roles omit it.
   */
  readonly roles?: readonly string[];
}

/** `fetchRevocations` result: the signed revocation lists the relay holds, one per issuer (newest sequence). */
export interface FetchRevocationsResult {
  readonly lists: readonly Uint8Array[];
}

/** `send` payload. The sender is the authenticated socket's device; there is no `from` field. */
export interface SendRequest {
  /** Recipient device id. */
  readonly to: string;
  /** Client-chosen id, unique per sender; a retry with the same id is stored once. */
  readonly id: string;
  /** Opaque ciphertext, 1 … {@link RELAY_MAX_ENVELOPE_BYTES} bytes. */
  readonly envelope: Uint8Array;
}

/** `send` result: acked only after the envelope is durably stored. */
export interface SendResult {
  /** Relay sequence number; increases per recipient. */
  readonly seq: number;
  /** True when `(from, id)` was already stored (a retry); nothing new was queued. */
  readonly duplicate: boolean;
}

/** A queued envelope pushed to the recipient (`message` event). At least once: dedupe by `(from, id)`. */
export interface RelayMessage {
  readonly seq: number;
  /** Sender device id, taken by the relay from the sender's authenticated socket. */
  readonly from: string;
  readonly id: string;
  readonly envelope: Uint8Array;
  /** When the relay stored it, ms since the epoch. */
  readonly receivedAt: number;
}

/** `ack` payload: the recipient has durably processed these messages; the relay deletes them. */
export interface AckRequest {
  /** 1 … {@link RELAY_MAX_ACK_BATCH} sequence numbers of messages addressed to this device. */
  readonly seqs: readonly number[];
}

/** `fetchBundle` payload. */
export interface FetchBundleRequest {
  readonly deviceId: string;
}

/**
 * Public statements a device publishes about itself next to its prekeys. The relay stores and
 * returns them byte for byte and never interprets them: it is not trusted for them, clients
 * verify them (an org certificate against the pinned org key, `org-cert.ts` in the client; an
 * attestation against the bundle's identity and a pinned measurement, `@parley/protocol/attestation`).
 */
export interface DeviceStatements {
  /**
   * An organisation certificate of this device's identity (`parley-org certify`, binary form),
   * 1 … {@link RELAY_MAX_CERTIFICATE_BYTES} bytes. In an upload: absent keeps the stored one,
   * an empty array removes it.
   */
  readonly certificate?: Uint8Array;
  /**
   * A bot enclave attestation (`encodeAttestation`, 121 bytes in version 1), 1 …
   * {@link RELAY_MAX_ATTESTATION_BYTES} bytes. In an upload: absent keeps the stored one, an
   * empty array removes it.
   */
  readonly attestation?: Uint8Array;
  /**
   * The org-signed release manifests a bot runs under (`encodeReleaseManifestList`,
   * release-manifest.ts), 1 … {@link RELAY_MAX_MANIFESTS_BYTES} bytes. The relay checks only the
   * list's framing (count ≤ 8, each ≤ 1 KiB). In an upload: absent keeps the stored list, an
   * empty array removes it.
   */
  readonly manifests?: Uint8Array;
  /**
   * The org-signed compliance archive disclosure (`signArchiveDisclosure`, archive.ts), 1 …
   * {@link RELAY_MAX_DISCLOSURE_BYTES} bytes, opaque to the relay. In an upload: absent keeps the
   * stored one, an empty array removes it.
   */
  readonly disclosure?: Uint8Array;
}

/** `uploadPrekeys` payload: the prekeys, and optionally the device's statements. */
export type PrekeyPublication = PrekeyUpload & DeviceStatements;

/**
 * `fetchBundle` result. The statements are beside the bundle (not in it), present only when the
 * device published them; {@link PrekeyBundle} itself is unchanged.
 */
export type FetchBundleResult = { readonly bundle: PrekeyBundle } & DeviceStatements;

/** `fetchIdentity` payload. */
export interface FetchIdentityRequest {
  readonly deviceId: string;
}

/** `fetchIdentity` result: the identity and statements, without consuming a one-time prekey. */
export type FetchIdentityResult = { readonly identity: PublicIdentity } & DeviceStatements;

/** Events the client emits. Each takes one payload and an ack. */
export interface ClientToServerEvents {
  /** Must be the first event. Failure: `UNAUTHENTICATED`, then disconnect. */
  auth: (answer: AuthAnswer, ack: (r: RelayResult<AuthResult>) => void) => void;
  /**
   * Publishes this device's identity, signed prekey (replaces the old one) and one-time prekeys
   * (appended; ids already known are ignored), and optionally its `certificate` and
   * `attestation` (opaque, ≤ 512 bytes each; absent keeps the stored value, empty removes it),
   * and its release `manifests` (a list, ≤ {@link RELAY_MAX_MANIFESTS_BYTES}, same rule).
   * `FORBIDDEN` when `identity` is not the socket's own, `INVALID_SIGNATURE`/`INVALID_KEY` for a
   * bad binding or SPK signature, `MALFORMED_MESSAGE` for an over-long certificate or attestation
   * or a malformed manifest list.
   */
  uploadPrekeys: (upload: PrekeyPublication, ack: (r: RelayResult<{ readonly oneTimePrekeys: number }>) => void) => void;
  /**
   * Fetches a peer's bundle, consuming one one-time prekey (never handed out twice); without
   * OPKs left, the bundle has no `oneTimePrekey`. The device's `certificate`, `attestation` and
   * `manifests`, when it published them, come beside the bundle. `SESSION_NOT_FOUND` when the device never
   * uploaded; `RATE_LIMITED` beyond the per-requester rate (default 10/min).
   */
  fetchBundle: (req: FetchBundleRequest, ack: (r: RelayResult<FetchBundleResult>) => void) => void;
  /**
   * A peer's identity with its `certificate`, `attestation` and `manifests`, consuming no one-time prekey
   * (to check or refresh a peer's statements when a session already exists).
   * `SESSION_NOT_FOUND` when the device never uploaded; same rate limit as `fetchBundle`.
   */
  fetchIdentity: (req: FetchIdentityRequest, ack: (r: RelayResult<FetchIdentityResult>) => void) => void;
  /** Queues an envelope. `PAYLOAD_TOO_LARGE`, `STORAGE_QUOTA` (recipient queue full), `RATE_LIMITED`. */
  send: (req: SendRequest, ack: (r: RelayResult<SendResult>) => void) => void;
  /** Deletes delivered messages addressed to this device. Unknown seqs are ignored. */
  ack: (req: AckRequest, ack: (r: RelayResult<{ readonly deleted: number }>) => void) => void;
  /** Asks the relay to push every pending message again (e.g. after a client-side restart). */
  fetchQueue: (req: Record<string, never>, ack: (r: RelayResult<{ readonly pending: number }>) => void) => void;
  /**
   * The signed staff revocation lists the relay holds (`signRevocationList`; verify each with
   * `verifyRevocationList` against the pinned org key: the relay is not trusted for them).
   */
  fetchRevocations: (req: Record<string, never>, ack: (r: RelayResult<FetchRevocationsResult>) => void) => void;
  /**
   * Opens a handoff ticket for this device (the customer); idempotent on `ref` while the ticket
   * is open (returns the open one). `notify`: a device also told of its changes (the bot).
   */
  ticketOpen: (req: TicketOpenRequest, ack: (r: RelayResult<{ readonly ticket: Ticket }>) => void) => void;
  /** Open tickets (of one queue, or all), oldest first. Agents and supervisors only (`FORBIDDEN`, reason `role`). */
  ticketList: (req: TicketListRequest, ack: (r: RelayResult<{ readonly tickets: readonly Ticket[] }>) => void) => void;
  /** One ticket, for its customer, notify device, claimant, or staff (`FORBIDDEN` `notParty`); unknown: `USAGE` reason `noSuchTicket`. */
  ticketGet: (req: TicketIdRequest, ack: (r: RelayResult<{ readonly ticket: Ticket }>) => void) => void;
  /** Claims a waiting ticket, atomically on every node: `CONFLICT` (reason `claimed`) when another agent holds it. */
  ticketClaim: (req: TicketIdRequest, ack: (r: RelayResult<{ readonly ticket: Ticket }>) => void) => void;
  /** Back to waiting (optionally in another queue): by the customer (declined) or the claimant (transfer). */
  ticketRelease: (req: TicketReleaseRequest, ack: (r: RelayResult<{ readonly ticket: Ticket }>) => void) => void;
  /** Ends (deletes) the ticket: by the customer or the claimant. */
  /**
   * Appends one member's signed archive submission (`encodeArchiveSubmission`, archive.ts) to the
   * append-only archive of `ref`: the relay checks the signature, assigns the next index and the
   * previous entry's hash (`chainArchiveEntry`) and stores the entry. `INVALID_SIGNATURE` for a
   * bad signature, `FORBIDDEN` (reason `notSender`) when the submission's sender key is not the
   * socket's identity, `MALFORMED_MESSAGE` for a bad submission or another ref.
   */
  archiveAppend: (req: ArchiveAppendRequest, ack: (r: RelayResult<{ readonly index: number }>) => void) => void;
  ticketClose: (req: TicketIdRequest, ack: (r: RelayResult<{ readonly closed: true }>) => void) => void;
  /**
   * Erasure (docs/threats.md P4): deletes the envelopes this device sent that are still queued
   * (per recipient, by message id), closes its own tickets (by id, where it is the customer), and
   * deletes the compliance archive of each of `archiveRefs` this device appended to, unless the
   * ref is under a legal hold (named in `archiveHeld`). `FORBIDDEN` (reason `notArchiveMember`,
   * nothing purged) for a ref with entries this device never appended to.
   */
  purge: (req: PurgeRequest, ack: (r: RelayResult<PurgeResult>) => void) => void;
}

/** `purge` payload: at most 20 recipients of 500 message ids each, at most 50 tickets, 20 archive refs. */
export interface PurgeRequest {
  readonly targets: readonly { readonly to: string; readonly ids: readonly string[] }[];
  readonly tickets?: readonly string[];
  /** Archive refs (`archiveRef(conversationId)`) whose entries to delete. */
  readonly archiveRefs?: readonly string[];
}

/** `purge` result: what was deleted, and the archive refs kept under a legal hold. */
export interface PurgeResult {
  readonly envelopes: number;
  readonly tickets: number;
  /** Archive entries deleted. */
  readonly archiveEntries: number;
  /** Refs of `archiveRefs` under a legal hold: nothing of them was deleted. */
  readonly archiveHeld: readonly string[];
}

/**
 * Pushed as `archiveOpened` to each device that appended to an archive ref, once the compliance
 * officer opened or exported it (`parley-compliance open|export --reason`). Acknowledge it (the
 * ack callback): an unacknowledged notice comes again at the next login.
 */
export interface ArchiveOpenedNotice {
  readonly ref: string;
  /** When it was opened, ms since the epoch. */
  readonly at: number;
  /** The reason the opener gave. */
  readonly reason: string;
}

/** Events the relay emits. */
export interface ServerToClientEvents {
  hello: (hello: RelayHello) => void;
  message: (message: RelayMessage) => void;
  /** The owner's one-time prekey supply fell below the relay's threshold: upload more. */
  prekeysLow: (info: { readonly remaining: number }) => void;
  /** Sent just before the relay drops the socket (auth timeout, repeated violations). */
  relayError: (error: RelayError) => void;
  /** A handoff ticket changed (to staff on every node, to its customer and notify device). */
  ticket: (update: TicketUpdate) => void;
  /** A ticket waited longer than the relay's `ticketUnclaimedMs` (to its customer and notify device). */
  ticketUnclaimed: (info: TicketUnclaimed) => void;
  /** The compliance officer opened an archive this device appended to (ack it: {@link ArchiveOpenedNotice}). */
  archiveOpened: (notice: ArchiveOpenedNotice, ack: () => void) => void;
}

/** Names of the client events, for schema tables and pre-auth checks. */
export const CLIENT_EVENTS = [
  'auth',
  'uploadPrekeys',
  'fetchBundle',
  'fetchIdentity',
  'send',
  'ack',
  'fetchQueue',
  'fetchRevocations',
  'ticketOpen',
  'ticketList',
  'ticketGet',
  'ticketClaim',
  'ticketRelease',
  'ticketClose',
  'archiveAppend',
  'purge',
] as const;

/** Inputs of {@link relayAuthPayload}. */
export interface RelayAuthInput {
  readonly serverNonce: Uint8Array;
  readonly clientNonce: Uint8Array;
  /** The relay origin the client means to talk to, e.g. `https://relay.example.com` (URL.origin). */
  readonly origin: string;
  readonly timestamp: number;
  readonly deviceId: string;
}

/**
 * The bytes a device signs (context `relayAuth`) to log in. Both sides build them with this
 * function so the encoding cannot drift. Every field has a fixed size or a length prefix, so no
 * two inputs encode alike:
 * ```
 *  offset    size  field
 *  0         32    server nonce
 *  32        32    client nonce
 *  64        2     origin length L (u16 BE)
 *  66        L     origin, UTF-8
 *  66+L      8     timestamp, ms since the epoch (u64 BE)
 *  74+L      16    device id (the 16 bytes behind the 32 hex chars)
 * ```
 * What is actually signed is `"parley/v1/relay-auth" || 0x00 || payload` (contexts.ts), so a
 * relay cannot pick a nonce that doubles as an SPK or attestation signature (docs/threats.md C14).
 * The client must use the origin it dialled, never one the relay told it.
 * @throws ParleyError `USAGE` for a wrong-size nonce, a bad device id, an empty or over-long origin
 *   or a negative/non-integer timestamp.
 * @example
 * const payload = relayAuthPayload({ serverNonce, clientNonce, origin: new URL(url).origin, timestamp: Date.now(), deviceId });
 * const signature = identity.sign('relayAuth', payload);
 */
export function relayAuthPayload(input: RelayAuthInput): Uint8Array {
  const { serverNonce, clientNonce, origin, timestamp, deviceId } = input;
  if (!(serverNonce instanceof Uint8Array) || serverNonce.length !== RELAY_NONCE_BYTES) {
    throw new ParleyError('USAGE', 'serverNonce must be 32 bytes');
  }
  if (!(clientNonce instanceof Uint8Array) || clientNonce.length !== RELAY_NONCE_BYTES) {
    throw new ParleyError('USAGE', 'clientNonce must be 32 bytes');
  }
  const originBytes = typeof origin === 'string' ? utf8(origin) : new Uint8Array(0);
  if (originBytes.length === 0 || originBytes.length > 0xffff) throw new ParleyError('USAGE', 'origin must be 1..65535 bytes');
  if (!Number.isSafeInteger(timestamp) || timestamp < 0) throw new ParleyError('USAGE', 'timestamp must be a non-negative integer');
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) {
    throw new ParleyError('USAGE', 'deviceId must be 32 lower-case hex chars');
  }
  const lengths = new Uint8Array(2);
  new DataView(lengths.buffer).setUint16(0, originBytes.length);
  const time = new Uint8Array(8);
  new DataView(time.buffer).setBigUint64(0, BigInt(timestamp));
  return concatBytes(serverNonce, clientNonce, lengths, originBytes, time, fromHex(deviceId));
}
