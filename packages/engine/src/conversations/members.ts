/**
 * Member lists: the members hash every frame carries, the difference between two lists, and
 * random conversation ids. Runs in browsers and Node: SHA-256 from the protocol's crypto
 * provider (`getCrypto`, after `initCrypto`; crypto libraries are imported only by the
 * protocol's crypto layer, a dependency rule), randomness from `crypto.getRandomValues`.
 */
import { getCrypto, toBase64, toHex } from '@parley/protocol';
import type { Member } from './types.js';

const encoder = new TextEncoder();

/** Members sorted by device id (the canonical order), as plain `{ deviceId, name, role }`. */
export function sortMembers(members: readonly Member[]): Member[] {
  return [...members]
    .map((m) => ({ deviceId: m.deviceId, name: m.name, role: m.role }))
    .sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
}

/**
 * The members hash: SHA-256 (hex) of the canonical JSON (keys sorted, no spaces) of
 * `{ epoch, id, members, owner }`, members sorted by device id, each `{ deviceId, name, role }`.
 */
export function membersHash(id: string, owner: string, epoch: number, members: readonly Member[]): string {
  // JSON.stringify keeps insertion order: every object below is built with its keys sorted.
  const canonical = JSON.stringify({ epoch, id, members: sortMembers(members), owner });
  return toHex(getCrypto().sha256(encoder.encode(canonical)));
}

/** Who joined and who left between two lists (a changed role or name counts as neither). */
export function diffMembers(before: readonly Member[], after: readonly Member[]): { joined: Member[]; left: Member[] } {
  const had = new Set(before.map((m) => m.deviceId));
  const has = new Set(after.map((m) => m.deviceId));
  return {
    joined: after.filter((m) => !had.has(m.deviceId)).map((m) => ({ ...m })),
    left: before.filter((m) => !has.has(m.deviceId)).map((m) => ({ ...m })),
  };
}

/** A new random id: 22 chars of base64url (16 random bytes). */
export function randomConversationId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
