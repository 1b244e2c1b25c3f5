/**
 * valibot schemas for what the relay answers and pushes, checked on the device with the same
 * discipline the relay applies to frames (docs/threats.md I1): the relay is untrusted, so a
 * missing field, a string where bytes belong or a non-finite number is a typed
 * `MALFORMED_MESSAGE`, never a `TypeError` deeper in. Keys and signatures are verified later by
 * the key holder; this only guarantees types and bounds. Parsed outputs hold only known fields.
 */
import * as v from 'valibot';
import { ARCHIVE_REF_PATTERN, ParleyError } from '@parley/protocol/verify';
import {
  DEVICE_ID_PATTERN,
  MESSAGE_ID_PATTERN,
  RELAY_MAX_ATTESTATION_BYTES,
  RELAY_MAX_CERTIFICATE_BYTES,
  RELAY_MAX_MANIFESTS_BYTES,
  RELAY_MAX_DISCLOSURE_BYTES,
  RELAY_MAX_REVOCATION_LIST_BYTES,
} from '@parley/protocol/wire';

const bytes = (max: number) => v.pipe(v.instance(Uint8Array), v.maxLength(max));
const key = bytes(64);
const u32 = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0xffff_ffff));
const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const deviceId = v.pipe(v.string(), v.regex(DEVICE_ID_PATTERN));
const identity = v.object({ signingKey: key, dhKey: key, binding: key });
const statements = {
  certificate: v.optional(bytes(RELAY_MAX_CERTIFICATE_BYTES)),
  attestation: v.optional(bytes(RELAY_MAX_ATTESTATION_BYTES)),
  manifests: v.optional(bytes(RELAY_MAX_MANIFESTS_BYTES)),
  disclosure: v.optional(bytes(RELAY_MAX_DISCLOSURE_BYTES)),
};

/** The answer of each relay call (after `ok: true`). */
export const ANSWERS = {
  auth: v.object({
    deviceId, role: v.picklist(['device', 'bot']), serverTime: count,
    // Older relays omit it. A role is a short name (`customer`, `bot`, `agent`…).
    roles: v.optional(v.pipe(v.array(v.pipe(v.string(), v.maxLength(32))), v.maxLength(16))),
  }),
  send: v.object({ seq: count, duplicate: v.boolean() }),
  ack: v.object({}),
  uploadPrekeys: v.object({ oneTimePrekeys: count }),
  fetchBundle: v.object({
    bundle: v.object({
      identity,
      signedPrekey: v.object({ id: u32, createdAt: count, publicKey: key, signature: key }),
      oneTimePrekey: v.optional(v.object({ id: u32, publicKey: key })),
      ...statements,
    }),
    ...statements,
  }),
  fetchIdentity: v.object({ identity, ...statements }),
  fetchQueue: v.object({ pending: count }),
  archiveAppend: v.object({ index: count }),
  purge: v.object({
    envelopes: count,
    tickets: count,
    // Absent from relays before the archive purge.
    archiveEntries: v.optional(count, 0),
    archiveHeld: v.optional(v.pipe(v.array(v.pipe(v.string(), v.regex(ARCHIVE_REF_PATTERN))), v.maxLength(20)), []),
  }),
  // One list per issuer: a handful; each is verified against the org key by the caller.
  fetchRevocations: v.object({ lists: v.pipe(v.array(bytes(RELAY_MAX_REVOCATION_LIST_BYTES)), v.maxLength(64)) }),
} as const;

/** What the relay pushes. */
export const PUSHES = {
  message: v.object({
    seq: v.pipe(count, v.minValue(1)),
    from: deviceId,
    id: v.pipe(v.string(), v.regex(MESSAGE_ID_PATTERN)),
    envelope: bytes(1 << 24),
    receivedAt: count,
  }),
  prekeysLow: v.object({ remaining: count }),
  archiveOpened: v.object({ ref: v.pipe(v.string(), v.regex(ARCHIVE_REF_PATTERN)), at: count, reason: v.pipe(v.string(), v.maxLength(1000)) }),
} as const;

/**
 * `input` parsed by `schema`.
 * @throws ParleyError `MALFORMED_MESSAGE` naming what (`what`) and the first bad field, never its value.
 */
export function checked<S extends v.GenericSchema>(schema: S, input: unknown, what: string): v.InferOutput<S> {
  const r = v.safeParse(schema, input, { abortEarly: true });
  if (r.success) return r.output;
  const path = r.issues[0]?.path?.map((p) => String(p.key)).join('.') || '(root)';
  throw new ParleyError('MALFORMED_MESSAGE', `the relay sent a malformed ${what} (field ${path})`, { details: { field: path } });
}
