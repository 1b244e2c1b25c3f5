/**
 * Bot API keys. A key is 32 random bytes (base64url) with a public id in front; the store keeps
 * only SHA-256 of the whole key. A fast hash is enough because the key is high-entropy: there
 * is nothing to brute-force, and lookup by hash needs no per-key salt.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ApiKeyRecord, RelayStore } from './store/types.js';

/** Prefix of every key, so leaked keys are easy to spot by secret scanners. */
export const API_KEY_PREFIX = 'prk_';

/** SHA-256 of a presented key, lower-case hex. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Creates and stores a new key. The plaintext key is returned once and never stored.
 * @example
 * const { id, key } = await createApiKey(store, 'support bot');
 */
export async function createApiKey(store: RelayStore, label = '', now = Date.now()): Promise<{ id: string; key: string; record: ApiKeyRecord }> {
  const id = randomBytes(8).toString('hex');
  const key = `${API_KEY_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
  const record: ApiKeyRecord = { id, hash: hashApiKey(key), label: label.slice(0, 200), createdAt: now };
  await store.putApiKey(record);
  return { id, key, record };
}

/** The active record of `key`, or undefined (unknown, malformed or revoked key). */
export async function verifyApiKey(store: RelayStore, key: string): Promise<ApiKeyRecord | undefined> {
  if (!key.startsWith(API_KEY_PREFIX) || key.length > 200) return undefined;
  return store.findApiKey(hashApiKey(key));
}

/** What {@link checkApiKey} found. */
export type ApiKeyCheck =
  | { readonly status: 'active'; readonly record: ApiKeyRecord }
  | { readonly status: 'revoked'; readonly record: ApiKeyRecord }
  | { readonly status: 'unknown' };

/**
 * Looks a presented key up, revoked ones included, so a login can say "revoked" rather than
 * "unknown" (only to a caller holding the very key).
 */
export async function checkApiKey(store: RelayStore, key: string): Promise<ApiKeyCheck> {
  if (!key.startsWith(API_KEY_PREFIX) || key.length > 200) return { status: 'unknown' };
  const record = await store.findApiKey(hashApiKey(key), { includeRevoked: true });
  if (!record) return { status: 'unknown' };
  return record.revokedAt === undefined ? { status: 'active', record } : { status: 'revoked', record };
}

/**
 * The public id part of a presented key (`prk_<id>_<secret>`), for logs; never the key. Read
 * from the text only, so for an unknown key it is the id the caller claims.
 */
export function apiKeyIdOf(key: unknown): string | undefined {
  if (typeof key !== 'string') return undefined;
  return /^prk_([0-9a-f]{16})_/.exec(key)?.[1];
}
