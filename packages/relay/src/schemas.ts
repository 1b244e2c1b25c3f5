/**
 * valibot schemas for every client event payload (docs/threats.md R7). Objects are strict: unknown
 * keys, including an own `__proto__` key, are rejected, and the parsed output is a fresh object
 * holding only the known keys. Binary fields must be real `Uint8Array`s (Node: `Buffer`), never
 * strings or arrays of numbers.
 */
import * as v from 'valibot';
import {
  DEVICE_ID_PATTERN,
  MESSAGE_ID_PATTERN,
  RELAY_MAX_ACK_BATCH,
  RELAY_MAX_ATTESTATION_BYTES,
  RELAY_MAX_CERTIFICATE_BYTES,
  RELAY_MAX_CREDENTIAL_BYTES,
  RELAY_MAX_MANIFESTS_BYTES,
  RELAY_MAX_DISCLOSURE_BYTES,
  RELAY_MAX_ARCHIVE_SUBMISSION_BYTES,
  RELAY_MAX_OPKS_PER_UPLOAD,
  RELAY_MAX_ORIGIN_LENGTH,
  RELAY_NONCE_BYTES,
  TICKET_ID_PATTERN,
  TICKET_NAME_PATTERN,
} from '@parley/protocol/wire';
import { decodeReleaseManifestList } from '@parley/protocol/verify';

/** Exactly `n` bytes. */
const bytes = (n: number) =>
  v.pipe(v.instance(Uint8Array), v.check((b) => b.length === n, `expected ${n} bytes`));

/** Between 0 and `max` bytes (an opaque statement; empty removes the stored one). */
const upToBytes = (max: number) =>
  v.pipe(v.instance(Uint8Array), v.check((b) => b.length <= max, `expected at most ${max} bytes`));

/** Between 1 and `max` bytes. */
const someBytes = (max: number) =>
  v.pipe(v.instance(Uint8Array), v.check((b) => b.length >= 1 && b.length <= max, `expected 1..${max} bytes`));

/** Empty (removes the stored list), or a well-framed release manifest list. */
function isManifestList(b: Uint8Array): boolean {
  if (b.length === 0) return true;
  try {
    decodeReleaseManifestList(b);
    return true;
  } catch {
    return false;
  }
}

const u32 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffff_ffff));
const time = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const deviceId = v.pipe(v.string(), v.regex(DEVICE_ID_PATTERN));

const identity = v.strictObject({ signingKey: bytes(32), dhKey: bytes(32), binding: bytes(64) });

export const authSchema = v.strictObject({
  identity,
  clientNonce: bytes(RELAY_NONCE_BYTES),
  timestamp: time,
  signature: bytes(64),
  apiKey: v.optional(v.pipe(v.string(), v.maxLength(200))),
  // The origin the device signed: printable ASCII only, so it can be quoted in errors and logs.
  origin: v.optional(v.pipe(v.string(), v.maxLength(RELAY_MAX_ORIGIN_LENGTH), v.regex(/^[\x21-\x7e]+$/))),
  // A staff credential (verified against the org key when the relay has one).
  credential: v.optional(someBytes(RELAY_MAX_CREDENTIAL_BYTES)),
});

export const uploadPrekeysSchema = v.strictObject({
  identity,
  signedPrekey: v.strictObject({ id: u32, createdAt: time, publicKey: bytes(32), signature: bytes(64) }),
  oneTimePrekeys: v.pipe(
    v.array(v.strictObject({ id: u32, publicKey: bytes(32) })),
    v.maxLength(RELAY_MAX_OPKS_PER_UPLOAD),
  ),
  // Opaque to the relay: stored and handed out as they are; clients verify them.
  certificate: v.optional(upToBytes(RELAY_MAX_CERTIFICATE_BYTES)),
  attestation: v.optional(upToBytes(RELAY_MAX_ATTESTATION_BYTES)),
  // A list of release manifests: the framing is checked (≤ 8, each ≤ 1 KiB), not the manifests.
  manifests: v.optional(v.pipe(upToBytes(RELAY_MAX_MANIFESTS_BYTES), v.check((b) => isManifestList(b), 'expected a release manifest list'))),
  // An org-signed archive disclosure: opaque, clients verify it.
  disclosure: v.optional(upToBytes(RELAY_MAX_DISCLOSURE_BYTES)),
});

export const fetchBundleSchema = v.strictObject({ deviceId });

export const fetchIdentitySchema = v.strictObject({ deviceId });

/** `maxEnvelopeBytes` is a runtime limit, so the send schema is built per relay. */
export const sendSchema = (maxEnvelopeBytes: number) =>
  v.strictObject({ to: deviceId, id: v.pipe(v.string(), v.regex(MESSAGE_ID_PATTERN)), envelope: someBytes(maxEnvelopeBytes) });

export const ackSchema = v.strictObject({
  seqs: v.pipe(v.array(v.pipe(v.number(), v.safeInteger(), v.minValue(1))), v.minLength(1), v.maxLength(RELAY_MAX_ACK_BATCH)),
});

export const fetchQueueSchema = v.strictObject({});

export const fetchRevocationsSchema = v.strictObject({});

// Handoff tickets (tickets/handlers.ts): queue names and refs `[A-Za-z0-9_-]{1,64}`, ids 22 base64url.
const ticketName = v.pipe(v.string(), v.regex(TICKET_NAME_PATTERN));
const ticketId = v.pipe(v.string(), v.regex(TICKET_ID_PATTERN));

export const ticketOpenSchema = v.strictObject({ queue: ticketName, ref: ticketName, notify: v.optional(deviceId) });

export const ticketListSchema = v.strictObject({ queue: v.optional(ticketName) });

export const ticketIdSchema = v.strictObject({ ticketId });

export const ticketReleaseSchema = v.strictObject({ ticketId, queue: v.optional(ticketName) });

// The compliance archive (archive/handlers.ts): refs as in protocol archive.ts.
export const archiveAppendSchema = v.strictObject({
  ref: v.pipe(v.string(), v.regex(/^[A-Za-z0-9._:-]{1,128}$/)),
  submission: someBytes(RELAY_MAX_ARCHIVE_SUBMISSION_BYTES),
  // The sender may have appended these very bytes before (its answer was lost): see archive/handlers.ts.
  retry: v.optional(v.boolean()),
});

/** Parses or returns undefined; issues are not echoed back (they could quote payload bytes). */
export function parse<S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> | undefined {
  const r = v.safeParse(schema, input, { abortEarly: true });
  return r.success ? r.output : undefined;
}
