/**
 * The conversation frame codec: every kind round-trips, the members hash is canonical (order of
 * the list does not matter, every field does), and random corruptions of valid frames are either
 * still valid frames or `MALFORMED_MESSAGE`, never another exception.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { isParleyError } from '@parley/protocol';
import { decodeFrame, membersHash, type Frame, type Member } from '../src/index.js';
import { encodeFrame } from '../src/conversations/frame.js';
import { setupCrypto } from './helpers/engines.js';

before(setupCrypto);

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
const ID = 'x'.repeat(22);
const H = 'f'.repeat(64);
const T = 'T'.repeat(22);
const members: Member[] = [
  { deviceId: C, role: 'customer', name: 'Ann' },
  { deviceId: B, role: 'bot', name: 'Helper' },
  { deviceId: A, role: 'agent', name: 'Ünïcödé 名前' },
];

const frames: Frame[] = [
  { v: 1, c: ID, e: 1, h: H, s: 1, k: 'message', m: { type: 'text', text: 'hi' } },
  { v: 1, c: ID, e: 1, h: H, s: 2, k: 'message', m: { type: 'json', json: { a: [1, null, 'x'] } } },
  { v: 1, c: ID, e: 1, h: H, s: 3, k: 'message', m: { type: 'binary', b64: 'AAEC' } },
  { v: 1, c: ID, e: 2, h: H, s: 4, k: 'members', members, ticket: T },
  { v: 1, c: ID, e: 2, h: H, s: 0, k: 'handoff', queue: 'billing', reason: 'needs a person' },
  { v: 1, c: ID, e: 2, h: H, s: 0, k: 'history', ticket: T, items: [{ from: C, name: 'Ann', role: 'customer', id: 'm1', sentAt: 5, m: { type: 'text', text: 'old' } }] },
  { v: 1, c: ID, e: 2, h: H, s: 5, k: 'leave' },
  { v: 1, e: 0, h: '', s: 0, k: 'join', ticket: T, ref: 'r-1' },
  { v: 1, e: 0, h: '', s: 0, k: 'decline', ticket: T },
];

test('every kind round-trips', () => {
  for (const f of frames) assert.deepEqual(decodeFrame(encodeFrame(f)), f, f.k);
});

test('the members hash is canonical: list order does not matter, every field does', () => {
  const h = membersHash(ID, C, 2, members);
  assert.match(h, /^[0-9a-f]{64}$/);
  assert.equal(membersHash(ID, C, 2, [...members].reverse()), h);
  const variants = [
    membersHash('y'.repeat(22), C, 2, members),
    membersHash(ID, B, 2, members),
    membersHash(ID, C, 3, members),
    membersHash(ID, C, 2, members.slice(1)),
    membersHash(ID, C, 2, members.map((m, i) => (i === 1 ? { ...m, name: 'Other' } : m))),
    membersHash(ID, C, 2, members.map((m, i) => (i === 2 ? { ...m, role: 'supervisor' as const } : m))),
  ];
  assert.equal(new Set([h, ...variants]).size, variants.length + 1);
});

test('random corruptions are valid frames or MALFORMED_MESSAGE, nothing else', () => {
  let seed = 42;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    const bytes = encodeFrame(frames[i % frames.length]!).slice();
    const edits = 1 + rand(3);
    for (let j = 0; j < edits; j++) bytes[rand(bytes.length)] = rand(256);
    try {
      decodeFrame(bytes);
    } catch (e) {
      assert.ok(isParleyError(e, 'MALFORMED_MESSAGE'), `iteration ${i}: ${String(e)}`);
      refused++;
    }
  }
  assert.ok(refused > 2000, `most corruptions are refused (${refused})`);
});
