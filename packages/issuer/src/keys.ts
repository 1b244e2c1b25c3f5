/**
 * Key files: the issuer signing key (`parley-issuer keygen`, JSON like the org key file of
 * `parley-org keygen`, mode 0600, never overwritten) and the sealing key that seals TOTP secrets
 * and passkey records at rest (`<db>.sealing.key`, 32 random bytes as hex, mode 0600, created on
 * first use).
 */
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { fromHex, getCrypto, toHex } from '@parley/protocol';

/** `format` of an issuer key file. */
export const ISSUER_KEY_FORMAT = 'parley-issuer-key';

/** An issuer signing key. `seed` is secret. */
export interface IssuerKey {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

function refuseLoose(path: string): void {
  const st = statSync(path);
  if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) throw new Error(`${path} is readable by group or others; chmod 600 it`);
}

function createExclusive(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'EEXIST' ? `${path} exists; refusing to overwrite a key` : `cannot create ${path}`);
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

/** Writes a new issuer key file (mode 0600; fails if the file exists). */
export function writeIssuerKey(path: string, key: IssuerKey): void {
  createExclusive(path, `${JSON.stringify({ format: ISSUER_KEY_FORMAT, version: 1, seed: toHex(key.seed), publicKey: toHex(key.publicKey) }, null, 2)}\n`);
}

/** Reads an issuer key file; refuses one readable by group or others. */
export function readIssuerKey(path: string): IssuerKey {
  let text: string;
  try {
    refuseLoose(path);
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error((e as NodeJS.ErrnoException).code === 'ENOENT' ? `no key file at ${path}` : (e as Error).message);
  }
  let parsed: { format?: unknown; seed?: unknown; publicKey?: unknown };
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    parsed = {};
  }
  if (parsed.format !== ISSUER_KEY_FORMAT || typeof parsed.seed !== 'string' || !/^[0-9a-f]{64}$/.test(parsed.seed)) {
    throw new Error(`${path} is not a parley issuer key file`);
  }
  const seed = fromHex(parsed.seed);
  const publicKey = getCrypto().ed25519PublicKey(seed);
  return { seed, publicKey };
}

/** Bytes of the sealing key. */
export const SEALING_KEY_BYTES = 32;

/** Reads the sealing key at `path`, creating it (random, mode 0600) when `create` and it is missing. */
export function loadSealingKey(path: string, create: boolean): Uint8Array {
  try {
    refuseLoose(path);
    const hex = readFileSync(path, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`${path} is not a sealing key file (64 hex chars)`);
    return fromHex(hex);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    if (!create) throw new Error(`no sealing key at ${path}: give --sealing-key, or run serve once to create it`);
    const key = getCrypto().randomBytes(SEALING_KEY_BYTES);
    createExclusive(path, `${toHex(key)}\n`);
    return key;
  }
}
