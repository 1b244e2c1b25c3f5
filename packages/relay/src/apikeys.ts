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

/** True when `key` is an active key in the store. */
export async function verifyApiKey(store: RelayStore, key: string): Promise<ApiKeyRecord | undefined> {
  if (!key.startsWith(API_KEY_PREFIX) || key.length > 200) return undefined;
  return store.findApiKey(hashApiKey(key));
}
