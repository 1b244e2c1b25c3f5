/**
 * Public prekey material as published to the relay and fetched by initiators (X3DH §3.2).
 * Plain data with `Uint8Array` fields, so it crosses socket.io (binary) and worker boundaries
 * unchanged. Nothing here is secret.
 */
import { ParleyError } from './errors.js';
import type { PublicIdentity } from './identity-public.js';

/** A signed prekey: rotated periodically, signed (context `signedPrekey`) by the identity key. */
export interface SignedPrekeyPublic {
  /** Unsigned 32-bit id chosen by the owner. */
  readonly id: number;
  /** Creation time, milliseconds since the epoch. */
  readonly createdAt: number;
  /** X25519 public key (32 bytes). */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature over {@link signedPrekeyPayload}. */
  readonly signature: Uint8Array;
}

/** A one-time prekey, handed out by the relay at most once. */
export interface OneTimePrekeyPublic {
  /** Unsigned 32-bit id chosen by the owner. */
  readonly id: number;
  /** X25519 public key (32 bytes). */
  readonly publicKey: Uint8Array;
}

/** What a device uploads: its identity, current signed prekey and a batch of one-time prekeys. */
export interface PrekeyUpload {
  readonly identity: PublicIdentity;
  readonly signedPrekey: SignedPrekeyPublic;
  readonly oneTimePrekeys: readonly OneTimePrekeyPublic[];
}

/** What an initiator fetches: at most one one-time prekey, absent when the supply ran out. */
export interface PrekeyBundle {
  readonly identity: PublicIdentity;
  readonly signedPrekey: SignedPrekeyPublic;
  readonly oneTimePrekey?: OneTimePrekeyPublic;
}

/** The bytes the identity key signs for a signed prekey: id (u32 BE) || createdAt (u64 BE) || key. */
export function signedPrekeyPayload(spk: Pick<SignedPrekeyPublic, 'id' | 'createdAt' | 'publicKey'>): Uint8Array {
  const out = new Uint8Array(4 + 8 + 32);
  const view = new DataView(out.buffer);
  view.setUint32(0, spk.id >>> 0);
  view.setBigUint64(4, BigInt(Math.max(0, Math.floor(spk.createdAt))));
  out.set(spk.publicKey, 12);
  return out;
}

function malformed(field: string): never {
  throw new ParleyError('MALFORMED_MESSAGE', `prekey bundle: ${field} is missing or has the wrong type`, { details: { field } });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function isU32(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff;
}

/**
 * Checks the shape of a bundle that came from outside (the relay): every field present with its
 * type, ids u32, `createdAt` a non-negative safe integer. Sizes and signatures are
 * {@link verifyBundle}'s business.
 * @throws ParleyError `MALFORMED_MESSAGE` naming the first bad field.
 */
export function assertBundleShape(value: unknown): asserts value is PrekeyBundle {
  if (!isRecord(value)) malformed('bundle');
  const identity = value.identity;
  if (!isRecord(identity)) malformed('identity');
  for (const k of ['signingKey', 'dhKey', 'binding'] as const) if (!(identity[k] instanceof Uint8Array)) malformed(`identity.${k}`);
  const spk = value.signedPrekey;
  if (!isRecord(spk)) malformed('signedPrekey');
  if (!isU32(spk.id)) malformed('signedPrekey.id');
  if (typeof spk.createdAt !== 'number' || !Number.isSafeInteger(spk.createdAt) || spk.createdAt < 0) malformed('signedPrekey.createdAt');
  if (!(spk.publicKey instanceof Uint8Array)) malformed('signedPrekey.publicKey');
  if (!(spk.signature instanceof Uint8Array)) malformed('signedPrekey.signature');
  const opk = value.oneTimePrekey;
  if (opk === undefined) return;
  if (!isRecord(opk)) malformed('oneTimePrekey');
  if (!isU32(opk.id)) malformed('oneTimePrekey.id');
  if (!(opk.publicKey instanceof Uint8Array)) malformed('oneTimePrekey.publicKey');
}
