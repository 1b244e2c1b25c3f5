/**
 * The narrow, typed message protocol between the bot host and its enclave worker.
 *
 * This file is the whole interface: nothing else crosses. What may cross is public key
 * material, ciphertext envelopes, sealed state blobs, routing ids, attestations and typed errors
 * `{ code, message }`. Plaintext and private keys never do (docs/threats.md B1); the one exception is
 * the test-only `unsafeTestingExposeKeys` port, which never touches the host (see enclave/testing.ts).
 *
 * ```
 *  host                                              enclave (worker)
 *   | -- call { callId, method, params } ------------> |   every host call gets exactly one result
 *   | <------------- result { callId, ok, value|error } |
 *   | <------------- persist { reqId, puts, dels } ---- |   sealed blobs; the enclave waits for…
 *   | -- persisted { reqId, ok|error } ---------------> |   …the host's durable-write ack
 *   | <------------- send { to, id, envelope } -------- |   ciphertext for the relay (already persisted in the outbox)
 *   | <------------- needBundle { peer } -------------- |   fetch this peer's public bundle from the relay…
 *   | -- call resend { peer, bundle } ----------------> |   …and hand it in (self-healing sessions, a new conversation member)
 *   | <------------- event { name, error? } ----------- |   handler failures, session resets, as typed facts only
 *   | <------------- archive { key, ref, submission } -- |   a sealed archive submission for the relay…
 *   | -- call archived { key } -----------------------> |   …appended: the enclave drops it from its archive outbox
 * ```
 * Every message is validated on arrival in both directions ({@link parseHostMessage},
 * {@link parseEnclaveMessage}, {@link parseResult}); an invalid one is answered with a typed
 * `MALFORMED_MESSAGE` error and changes nothing.
 */
import { MessagePort } from 'node:worker_threads';
import { ParleyError, type SerializedParleyError } from '@parley/protocol/errors';
import { RELAY_MAX_ARCHIVE_SUBMISSION_BYTES, TICKET_ID_PATTERN } from '@parley/protocol/wire';
import { arrayBuffer, arrayOf, bool, bytes, fail, int, literal, object, oneOf, optional, str, union, type Check, type Checked } from './validate.js';

/** Largest sealed blob (one record); a session pickle with a full skipped-key store is ~100 KiB. */
export const MAX_BLOB_BYTES = 1024 * 1024;
/** Longest record key. Keys become file names on the host, so they stay short. */
export const MAX_RECORD_KEY_LENGTH = 120;
/** Most records in one persist batch. */
export const MAX_BATCH_RECORDS = 1000;
/** Most records the enclave can be started with. */
export const MAX_RECORDS = 1_000_000;
/** Largest envelope (the relay's cap, RELAY_MAX_ENVELOPE_BYTES). */
export const MAX_ENVELOPE_BYTES = 64 * 1024;
/** Bytes of the sealing secret. */
export const SEALING_SECRET_BYTES = 32;
/** Bounds of `handlerTimeoutMs` (README "Handler limits and failures"). */
export const MIN_HANDLER_TIMEOUT_MS = 50;
export const MAX_HANDLER_TIMEOUT_MS = 24 * 60 * 60 * 1000;
/** Most `maxHandlerFailures`. */
export const MAX_HANDLER_FAILURES = 100;
/** Largest failure reply (encoded); also the largest `handoffUnclaimedReply`. */
export const MAX_FAILURE_REPLY_BYTES = 16 * 1024;
/** Most message ids one `resendGaveUp` event names (the engine keeps 128 unconfirmed per peer). */
export const MAX_GIVEN_UP_IDS = 1024;
/** Most staff revocation lists in one `revocations` call (the relay hands out at most 64). */
export const MAX_REVOCATION_LISTS = 64;
/** Largest revocation list (the relay's `RELAY_MAX_REVOCATION_LIST_BYTES`). */
export const MAX_REVOCATION_LIST_BYTES = 64 * 1024;
/** Largest certificate statement (the relay's `RELAY_MAX_CERTIFICATE_BYTES`). */
export const MAX_CERTIFICATE_BYTES = 1024;

const DEVICE_ID = /^[0-9a-f]{32}$/;
const MESSAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const RECORD_KEY = /^[A-Za-z0-9_:./-]{1,120}$/;

const callId = int(1, Number.MAX_SAFE_INTEGER);
const deviceId = str({ max: 32, pattern: DEVICE_ID });
const messageId = str({ max: 64, pattern: MESSAGE_ID });
const recordKey = str({ max: MAX_RECORD_KEY_LENGTH, pattern: RECORD_KEY });
const envelope = bytes(1, MAX_ENVELOPE_BYTES);
const u32 = int(0, 0xffff_ffff);
const time = int(0, Number.MAX_SAFE_INTEGER);
/** A `ParleyError` code (e.g. a session reset reason). */
const errorCode = str({ min: 1, max: 40, pattern: /^[A-Z_]+$/ });
/** A relay ticket id (22 chars of base64url). */
const ticketId = str({ min: 22, max: 22, pattern: TICKET_ID_PATTERN });
/** An error's `details.reason` (a short identifier, never a value). */
const reasonName = str({ min: 1, max: 40, pattern: /^[A-Za-z]+$/ });
/** Encoded content the host configures (a failure reply, the unclaimed-handoff reply). */
const configuredReply = object({ type: oneOf('text', 'json', 'binary'), body: bytes(0, MAX_FAILURE_REPLY_BYTES) });

export const sealedRecord = object({ key: recordKey, blob: bytes(1, MAX_BLOB_BYTES) });
export type SealedRecord = Checked<typeof sealedRecord>;

const port: Check<MessagePort> = (value, path) => {
  if (!(value instanceof MessagePort)) fail(path, 'expected a MessagePort');
  return value;
};

/**
 * Where the enclave gets its sealing secret (docs/threats.md B5). Either it reads a 32-byte file
 * itself (the host passes only the path), or the secret arrives as a transferred
 * `ArrayBuffer`, detached in the host by the transfer.
 */
const sealing = union({
  file: object({ type: literal('file'), path: str({ min: 1, max: 4096 }), create: bool }),
  buffer: object({ type: literal('buffer'), secret: arrayBuffer(SEALING_SECRET_BYTES) }),
});
export type SealingSource = Checked<typeof sealing>;

/** A measurement the sealed state may be migrated from, or `'unbound'` (a state from before issue 10). */
const migrateFrom: Check<Uint8Array | 'unbound'> = (value, path) => (value === 'unbound' ? 'unbound' : bytes(32)(value, path));
/** How the enclave's rollback anchor stood at start (README "Rollback"). */
const anchorStatus = oneOf('off', 'ok', 'new', 'missing', 'replaced');

const publicIdentity = object({ signingKey: bytes(32), dhKey: bytes(32), binding: bytes(64) });
const signedPrekey = object({ id: u32, createdAt: time, publicKey: bytes(32), signature: bytes(64) });
const oneTimePrekey = object({ id: u32, publicKey: bytes(32) });
/**
 * A peer's prekey bundle as the relay hands it out: public keys only, exact sizes. The enclave's
 * engine verifies it (the identity must hash to the peer's device id and match the one it
 * recorded; the signed prekey's signature). A customer's org certificate or attestation is not
 * carried: the bot requires neither of customers.
 */
export const prekeyBundle = object({ identity: publicIdentity, signedPrekey, oneTimePrekey: optional(oneTimePrekey) });
export type PrekeyBundleWire = Checked<typeof prekeyBundle>;
const attestation = object({
  version: literal(1),
  deviceId,
  measurement: bytes(32),
  issuedAt: time,
  signature: bytes(64),
});

/** Parameters and results of every host → enclave call. */
export const methods = {
  /** Starts the enclave from sealed state (or creates the bot's keys if there is none). */
  init: {
    params: object({
      handlerUrl: str({ min: 1, max: 4096 }),
      records: arrayOf(sealedRecord, MAX_RECORDS),
      sealing,
      /** One-time prekeys the bot keeps published (the host asks for them with `prekeys`). */
      oneTimePrekeys: int(0, 100),
      /** Test builds only: the enclave posts its private key bytes here (never via the host). */
      unsafeTestingExposeKeys: optional(port),
      /** Re-seal a state sealed to this measurement for the running code (README "Measurement binding"). */
      migrateFrom: optional(migrateFrom),
      /** The rollback anchor file, which the enclave reads and writes itself (README "Rollback"). */
      rollbackAnchor: optional(str({ min: 1, max: 4096 })),
      /** The egress policy (README "Egress policy and ctx.fetch"): canonicalised, measured and enforced by the enclave. */
      egress: optional(arrayOf(str({ min: 1, max: 300 }), 64)),
      /** Handler limits (README "Handler limits and failures"): time limit of one run, failures before a message is quarantined. */
      handlerTimeoutMs: optional(int(MIN_HANDLER_TIMEOUT_MS, MAX_HANDLER_TIMEOUT_MS)),
      maxHandlerFailures: optional(int(1, MAX_HANDLER_FAILURES)),
      /** What the customer gets when a run fails (encoded content); none when absent. */
      failureReply: optional(configuredReply),
      /**
       * What the customer gets in its conversation with the bot when the relay reports a handoff
       * ticket unclaimed (`handoffUnclaimed`), encoded; none when absent. Host configuration,
       * not measured (like `failureReply`).
       */
      handoffUnclaimedReply: optional(configuredReply),
      /** Dev mode: handler errors cross with their message and stack (part of the measurement). */
      dev: optional(bool),
      /**
       * The pinned org root key (README "Staff"): a peer publishing a staff credential is verified
       * against it (root → issuer → device, policy, expiry, revocation). Customers stay uncertified.
       */
      orgKey: optional(bytes(32)),
      /**
       * The published archive disclosure (README "Compliance archive: the bot's messages"): with
       * `orgKey`, the enclave verifies it and seals every message it sends in a conversation to
       * its compliance key. A disclosure that does not verify fails the start.
       */
      archiveDisclosure: optional(bytes(1, 1024)),
    }),
    result: object({
      deviceId,
      identity: publicIdentity,
      measurement: bytes(32),
      attestation,
      redelivered: int(0, MAX_RECORDS),
      /** A migration this start made (the host logs it), and the rollback anchor's status. */
      sealing: optional(object({ migratedFrom: optional(migrateFrom), anchor: anchorStatus })),
    }),
  },
  /** Answers the relay's login challenge. The enclave picks the client nonce and time and signs under context `relayAuth` only. */
  relayAuth: {
    params: object({ serverNonce: bytes(32), origin: str({ min: 1, max: 2048 }) }),
    result: object({ identity: publicIdentity, clientNonce: bytes(32), timestamp: time, signature: bytes(64) }),
  },
  /** The prekeys to publish (identity, signed prekey, unpublished one-time prekeys). */
  prekeys: {
    params: object({ generate: int(0, 100) }),
    result: object({
      identity: publicIdentity,
      signedPrekey,
      oneTimePrekeys: arrayOf(oneTimePrekey, 100),
    }),
  },
  /** The relay stored these one-time prekeys; don't upload them again. */
  prekeysPublished: {
    params: object({ ids: arrayOf(u32, 100) }),
    result: object({}),
  },
  /**
   * One envelope from the relay. Resolves once the enclave has durably taken it (`accepted`,
   * with the plaintext queued for the handler inside the enclave) or knows it already has it
   * (`duplicate`). Only then may the host ack the relay. A rejected envelope (forged, corrupt)
   * comes back as a typed error; the host acks it too so the relay drops it.
   */
  deliver: {
    params: object({ from: deviceId, id: messageId, envelope }),
    result: object({ status: union({ accepted: object({ type: literal('accepted') }), duplicate: object({ type: literal('duplicate') }) }) }),
  },
  /** The relay durably stored this outgoing envelope; the enclave may drop it from its outbox. */
  sent: {
    params: object({ to: deviceId, id: messageId }),
    result: object({}),
  },
  /**
   * The bundle of `peer` the enclave asked for (`needBundle`), fetched from the relay. When the
   * peer had asked for a session reset, the enclave re-encrypts the replies it has not receipted
   * into a fresh session (posted as `send`, relay ids `<id>-r<k>`); replies and receipts waiting
   * for a session use it too. A bundle the enclave did not ask for changes nothing.
   */
  resend: {
    params: object({ peer: deviceId, bundle: prekeyBundle }),
    result: object({}),
  },
  /**
   * The staff revocation lists the relay holds (`fetchRevocations`), fetched by the host after
   * each login and every `revocationRefreshMs`. The enclave verifies each against the pinned org
   * key (the host and relay are not trusted for them) and keeps the newest per issuer, sealed.
   */
  revocations: {
    params: object({ lists: arrayOf(bytes(1, MAX_REVOCATION_LIST_BYTES), MAX_REVOCATION_LISTS) }),
    result: object({ accepted: int(0, MAX_REVOCATION_LISTS), stale: int(0, MAX_REVOCATION_LISTS), refused: int(0, MAX_REVOCATION_LISTS) }),
  },
  /**
   * `peer`'s published statements as the relay returned them (`fetchIdentity`), fetched by the
   * host when a peer opens a new session: a staff credential among them is verified by the
   * enclave against the org key (refused: a typed `UNTRUSTED_IDENTITY` error, and the host
   * drops that peer's delivery). Without an org key nothing is kept.
   */
  peerStatements: {
    params: object({ peer: deviceId, identity: publicIdentity, certificate: bytes(1, MAX_CERTIFICATE_BYTES) }),
    result: object({ staff: bool, expiresAt: optional(time) }),
  },
  /**
   * The relay reported a handoff ticket unclaimed whose `notify` is this bot
   * (`RelayLink.onTicketUnclaimed`). The enclave sends `handoffUnclaimedReply` into the
   * conversation `customer` owns with the bot (the one the bot last asked a handoff in, else the
   * newest), at most once per ticket id and under an id derived from it. `sent: false` when there
   * is no such conversation, no reply is configured, or this ticket was answered already. The
   * host is not trusted here either: all it can do is make the bot send its configured text, once
   * per ticket id, into a conversation whose owner is `customer` and in which the bot is a member.
   */
  handoffUnclaimed: {
    params: object({ ticketId, customer: deviceId, waitingMs: time }),
    result: object({ sent: bool }),
  },
  /** The relay appended the archive submission posted as `archive` under `key`: drop it from the archive outbox. */
  archived: {
    params: object({ key: recordKey }),
    result: object({}),
  },
  /** A fresh attestation (new `issuedAt`). */
  attest: {
    params: object({}),
    result: attestation,
  },
  /** Test hook: the enclave throws inside a crypto operation (B2). Refused unless testing hooks are on. */
  unsafeTestingCrash: {
    params: object({ how: union({ throw: object({ type: literal('throw') }), exit: object({ type: literal('exit') }), oom: object({ type: literal('oom') }) }) }),
    result: object({}),
  },
} as const;

export type MethodName = keyof typeof methods;
export type Params<M extends MethodName> = Checked<(typeof methods)[M]['params']>;
export type Result<M extends MethodName> = Checked<(typeof methods)[M]['result']>;
export type BotAttestationWire = Checked<typeof attestation>;

const serializedError = object({
  code: str({ min: 1, max: 40, pattern: /^[A-Z_]+$/ }),
  message: str({ max: 500 }),
  details: optional((value, path) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) fail(path, 'expected an object');
    const out: Record<string, string | number | boolean> = {};
    const keys = Object.keys(value);
    if (keys.length > 16) fail(path, 'too many details');
    for (const k of keys) {
      const v = (value as Record<string, unknown>)[k];
      if (k === '__proto__' || !['string', 'number', 'boolean'].includes(typeof v)) fail(path, 'bad detail');
      out[k] = typeof v === 'string' ? v.slice(0, 200) : (v as number | boolean);
    }
    return out;
  }),
});

/** Messages the host posts to the enclave. `params` of a call is validated per method by the enclave. */
export const hostMessage = union({
  call: object({ type: literal('call'), callId, method: str({ max: 40 }), params: (v) => v }),
  persisted: object({ type: literal('persisted'), reqId: callId, ok: bool, error: optional(serializedError) }),
});
export type HostMessage = Checked<typeof hostMessage>;

/** Messages the enclave posts to the host. A call's `value` is validated per method by the host. */
export const enclaveMessage = union({
  result: object({ type: literal('result'), callId, ok: bool, value: (v) => v, error: optional(serializedError) }),
  persist: object({
    type: literal('persist'),
    reqId: callId,
    puts: arrayOf(sealedRecord, MAX_BATCH_RECORDS),
    dels: arrayOf(recordKey, MAX_BATCH_RECORDS),
  }),
  send: object({ type: literal('send'), to: deviceId, id: messageId, envelope }),
  /** The enclave needs `peer`'s bundle (a session reset, or a conversation member it has no session with): fetch it and call `resend`. */
  needBundle: object({ type: literal('needBundle'), peer: deviceId }),
  /**
   * A sealed, signed archive submission (already in the sealed archive outbox under `key`) to
   * append at the relay (`archiveAppend`), then call `archived`. `retry`: it may have been
   * appended before (posted again after a restart).
   */
  archive: object({ type: literal('archive'), key: recordKey, ref: str({ min: 1, max: 128, pattern: /^[A-Za-z0-9._:-]{1,128}$/ }), submission: bytes(1, RELAY_MAX_ARCHIVE_SUBMISSION_BYTES), retry: bool }),
  event: object({
    type: literal('event'),
    name: union({
      /**
       * A handler run failed (`kind` etc. present), or the commit after a run did (no `kind`).
       * `dev` only in dev mode: the handler's own error message and stack (may carry plaintext).
       */
      handlerFailed: object({
        type: literal('handlerFailed'),
        kind: optional(oneOf('timeout', 'threw', 'oversize')),
        peer: optional(deviceId),
        messageId: optional(messageId),
        failures: optional(int(1, MAX_HANDLER_FAILURES)),
        quarantined: optional(bool),
        failureReplySent: optional(bool),
        dev: optional(
          object({
            message: str({ max: 1000 }),
            stack: optional(str({ max: 4000 })),
            file: optional(str({ max: 1000 })),
            line: optional(int(0, Number.MAX_SAFE_INTEGER)),
          }),
        ),
      }),
      ready: object({ type: literal('ready') }),
      /** A session with `peer` was reset: the bot asked for it (`self`, it could not decrypt) or the peer did. */
      sessionReset: object({ type: literal('sessionReset'), peer: deviceId, initiatedBy: oneOf('self', 'peer'), reason: errorCode }),
      /** Replies to `peer` given up on after repeated session resets (never delivered). */
      resendGaveUp: object({ type: literal('resendGaveUp'), peer: deviceId, ids: arrayOf(messageId, MAX_GIVEN_UP_IDS) }),
      /** A conversation reply (or handoff) `messageId` could not be encrypted to member `peer` (the other members got it). */
      conversationSendFailed: object({ type: literal('conversationSendFailed'), peer: deviceId, messageId, code: errorCode, reason: optional(reasonName) }),
    }),
    error: optional(serializedError),
  }),
  /** Answer to a host message the enclave could not even parse (no usable callId). */
  rejected: object({ type: literal('rejected'), error: serializedError }),
});
export type EnclaveMessage = Checked<typeof enclaveMessage>;

export function parseHostMessage(value: unknown): HostMessage {
  return hostMessage(value, 'message');
}

export function parseEnclaveMessage(value: unknown): EnclaveMessage {
  return enclaveMessage(value, 'message');
}

export function isMethod(name: string): name is MethodName {
  return Object.hasOwn(methods, name);
}

export function parseParams<M extends MethodName>(method: M, value: unknown): Params<M> {
  return methods[method].params(value, `${method}.params`) as Params<M>;
}

export function parseResult<M extends MethodName>(method: M, value: unknown): Result<M> {
  return methods[method].result(value, `${method}.result`) as Result<M>;
}

/**
 * The boundary form of any thrown value. Only `ParleyError`s keep their message (by convention
 * they never quote key bytes or plaintext); anything else (a handler's `TypeError` whose message
 * could quote a customer's text) becomes `INTERNAL` with a fixed message naming only its class.
 */
export function toWireError(e: unknown): SerializedParleyError {
  if (e instanceof ParleyError) {
    // Longer messages would fail the boundary's schema (and the answer would be lost): cut them.
    const wire = e.toJSON();
    return wire.message.length > 500 ? { ...wire, message: `${wire.message.slice(0, 499)}…` } : wire;
  }
  const name = e instanceof Error && /^[A-Za-z]{1,40}$/.test(e.name) ? e.name : 'non-error value';
  return { code: 'INTERNAL', message: `unexpected ${name} (message withheld at the enclave boundary)` };
}

/** Rebuilds a typed error from its boundary form. */
export function fromWireError(e: unknown): ParleyError {
  return ParleyError.fromJSON(e);
}
