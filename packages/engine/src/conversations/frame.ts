/**
 * The conversation frame codec: UTF-8 JSON, at most {@link MAX_FRAME_BYTES}, validated strictly
 * on decode (unknown fields, wrong types, oversized values and ids of the wrong form are all
 * `MALFORMED_MESSAGE`), and the mapping between app content and a frame's `m`.
 */
import { ParleyError, encodeContent, fromBase64, toBase64, type MessageContent, type OutgoingContent } from '@parley/protocol';
import { DEVICE_ID_PATTERN, MESSAGE_ID_PATTERN, TICKET_ID_PATTERN, TICKET_NAME_PATTERN } from '@parley/protocol/wire';
import { checkErasureFields, checkRetention } from './erasure.js';
import type { Frame, FrameContent, FrameKind, HistoryItem, Member, MemberRole } from './types.js';
import { CONSENT_FRAME_FIELDS, CONSENT_KINDS, checkConsentFields } from './consent.js';

/** Largest frame, in bytes of UTF-8 JSON. */
export const MAX_FRAME_BYTES = 48 * 1024;
/** Most members of one conversation. */
export const MAX_MEMBERS = 20;
/** Longest member name, in characters. */
export const MAX_NAME_CHARS = 100;
/** Longest handoff reason, in characters. */
export const MAX_REASON_CHARS = 500;
/** Most items of one history bundle (and messages kept per conversation). */
export const MAX_HISTORY_ITEMS = 500;
/** Conversation ids: 22 chars of base64url (16 random bytes). */
export const CONVERSATION_ID_PATTERN = /^[A-Za-z0-9_-]{22}$/;

const HASH_PATTERN = /^[0-9a-f]{64}$/;
const ROLES: readonly MemberRole[] = ['customer', 'bot', 'agent', 'supervisor'];
const KINDS: readonly FrameKind[] = ['message', 'members', 'handoff', 'join', 'decline', 'history', 'leave', 'erase', 'deletionReceipt', ...CONSENT_KINDS];
const FRAME_KEYS = new Set(['v', 'c', 'e', 'h', 's', 'k', 'm', 'members', 'ticket', 'queue', 'reason', 'ref', 'items', 'at', 'to', 'req', 'sig', 'ret', 'consent', 'receipt', 'form', 'values']);
/** Fields each kind may carry beside v, c, e, h, s, k. */
const KIND_FIELDS: Record<FrameKind, readonly string[]> = {
  message: ['m'],
  members: ['members', 'ticket', 'ret'],
  handoff: ['queue', 'reason'],
  join: ['ref', 'ticket'],
  decline: ['ticket', 'ref'],
  history: ['items', 'ticket'],
  leave: [],
  ...CONSENT_FRAME_FIELDS,
  erase: ['at', 'to', 'sig'],
  deletionReceipt: ['at', 'req', 'sig'],
};
/** Kinds sent to every other member, which carry a sequence number. */
export const SEQUENCED_KINDS: ReadonlySet<FrameKind> = new Set(['message', 'members', 'leave']);

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

function bad(what: string): never {
  throw new ParleyError('MALFORMED_MESSAGE', `conversation frame refused: ${what}; the frame was dropped (the sender runs an incompatible or faulty client)`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function u32(v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > 0xffffffff) bad(`${what} is not a u32`);
  return v as number;
}

function str(v: unknown, what: string, max: number): string {
  if (typeof v !== 'string' || v.length > max) bad(`${what} is not a string of at most ${max} chars`);
  return v;
}

function pattern(v: unknown, re: RegExp, what: string): string {
  if (typeof v !== 'string' || !re.test(v)) bad(`${what} has the wrong form`);
  return v;
}

/** Validates a frame's content (`m`). */
export function checkContent(v: unknown): FrameContent {
  if (!isRecord(v)) bad('content is not an object');
  const keys = Object.keys(v);
  if (v.type === 'text') {
    if (keys.length !== 2 || typeof v.text !== 'string') bad('text content');
    return { type: 'text', text: v.text };
  }
  if (v.type === 'json') {
    if (keys.length !== 2 || !('json' in v)) bad('json content');
    return { type: 'json', json: v.json };
  }
  if (v.type === 'binary') {
    if (keys.length !== 2 || typeof v.b64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v.b64)) bad('binary content');
    return { type: 'binary', b64: v.b64 };
  }
  return bad('unknown content type');
}

/** Validates one member entry. */
export function checkMember(v: unknown): Member {
  if (!isRecord(v) || Object.keys(v).length !== 3) bad('member entry');
  const deviceId = pattern(v.deviceId, DEVICE_ID_PATTERN, 'member device id');
  if (!ROLES.includes(v.role as MemberRole)) bad('member role');
  const name = str(v.name, 'member name', MAX_NAME_CHARS);
  return { deviceId, role: v.role as MemberRole, name };
}

/** Validates a member list: 1..{@link MAX_MEMBERS} distinct devices. */
export function checkMembers(v: unknown): Member[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_MEMBERS) bad(`member list must hold 1-${MAX_MEMBERS} entries`);
  const members = v.map(checkMember);
  if (new Set(members.map((m) => m.deviceId)).size !== members.length) bad('member list names a device twice');
  return members;
}

function checkItem(v: unknown): HistoryItem {
  if (!isRecord(v) || Object.keys(v).length !== 6) bad('history item');
  const from = pattern(v.from, DEVICE_ID_PATTERN, 'history item sender');
  const name = str(v.name, 'history item name', MAX_NAME_CHARS);
  if (!ROLES.includes(v.role as MemberRole)) bad('history item role');
  const id = pattern(v.id, MESSAGE_ID_PATTERN, 'history item id');
  if (!Number.isSafeInteger(v.sentAt) || (v.sentAt as number) < 0) bad('history item time');
  return { from, name, role: v.role as MemberRole, id, sentAt: v.sentAt as number, m: checkContent(v.m) };
}

/**
 * Checks a frame object against the format (also used before encoding, so this device never
 * sends what a receiver would refuse).
 * @throws ParleyError `MALFORMED_MESSAGE`.
 */
export function checkFrame(v: unknown): Frame {
  if (!isRecord(v)) bad('not an object');
  if (v.v !== 1) bad('unknown frame version');
  const k = v.k as FrameKind;
  if (!KINDS.includes(k)) bad('unknown frame kind');
  for (const key of Object.keys(v)) {
    if (!FRAME_KEYS.has(key)) bad('unknown field');
    if (!['v', 'c', 'e', 'h', 's', 'k'].includes(key) && !KIND_FIELDS[k].includes(key)) bad(`field ${key} in a ${k} frame`); // ct-ok: JSON field names
  }
  const e = u32(v.e, 'epoch');
  const s = u32(v.s, 'sequence number');
  const h = v.h;
  const out: { -readonly [K in keyof Frame]: Frame[K] } = { v: 1, e, h: '', s, k };
  if (k === 'join' || k === 'decline') {
    if (v.c !== undefined || e !== 0 || h !== '' || s !== 0) bad(`${k} frame inside a conversation`);
    out.ticket = pattern(v.ticket, TICKET_ID_PATTERN, 'ticket id');
    if (k === 'join' || v.ref !== undefined) out.ref = pattern(v.ref, TICKET_NAME_PATTERN, 'ticket ref');
    return out;
  }
  out.c = pattern(v.c, CONVERSATION_ID_PATTERN, 'conversation id');
  out.h = pattern(h, HASH_PATTERN, 'members hash');
  if (e < 1) bad('epoch 0 inside a conversation');
  if (SEQUENCED_KINDS.has(k) ? s < 1 : s !== 0) bad('sequence number');
  switch (k) {
    case 'message':
      out.m = checkContent(v.m);
      break;
    case 'members':
      out.members = checkMembers(v.members);
      if (v.ticket !== undefined) out.ticket = pattern(v.ticket, TICKET_ID_PATTERN, 'ticket id');
      if (v.ret !== undefined) out.ret = checkRetention(v.ret);
      break;
    case 'handoff':
      out.queue = pattern(v.queue, TICKET_NAME_PATTERN, 'queue name');
      out.reason = str(v.reason, 'reason', MAX_REASON_CHARS);
      break;
    case 'history':
      if (!Array.isArray(v.items) || v.items.length > MAX_HISTORY_ITEMS) bad(`history must hold at most ${MAX_HISTORY_ITEMS} items`);
      out.items = v.items.map(checkItem);
      out.ticket = pattern(v.ticket, TICKET_ID_PATTERN, 'ticket id');
      break;
    case 'leave':
      break;
    case 'consentRequest':
    case 'consentReceipt':
    case 'formRequest':
    case 'formValues':
      Object.assign(out, checkConsentFields(k, v));
      break;
    case 'erase':
    case 'deletionReceipt':
      Object.assign(out, checkErasureFields(k, v));
      break;
  }
  return out;
}

/**
 * Encodes a frame (checked first).
 * @throws ParleyError `PAYLOAD_TOO_LARGE` above {@link MAX_FRAME_BYTES}, `USAGE` for a frame
 *   this device should not build.
 */
export function encodeFrame(frame: Frame): Uint8Array {
  try {
    checkFrame(JSON.parse(JSON.stringify(frame)) as unknown);
  } catch (cause) {
    throw new ParleyError('USAGE', 'this conversation frame would be refused by its receivers: check the ids, names and sizes passed', { cause });
  }
  const bytes = encoder.encode(JSON.stringify(frame));
  if (bytes.length > MAX_FRAME_BYTES) {
    throw new ParleyError('PAYLOAD_TOO_LARGE', `a conversation frame holds at most ${MAX_FRAME_BYTES} bytes: send less content`, {
      details: { size: bytes.length, max: MAX_FRAME_BYTES },
    });
  }
  return bytes;
}

/**
 * Decodes and validates a received frame.
 * @throws ParleyError `MALFORMED_MESSAGE` (also for oversized frames).
 */
export function decodeFrame(bytes: Uint8Array): Frame {
  if (bytes.length > MAX_FRAME_BYTES) bad(`larger than ${MAX_FRAME_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    bad('not UTF-8 JSON');
  }
  return checkFrame(value);
}

/** The frame content of what an app sends (`string` → text, bytes → binary, else JSON). */
export function toFrameContent(content: OutgoingContent): FrameContent {
  const { type, body } = encodeContent(content);
  if (type === 'text') return { type, text: content as string };
  if (type === 'binary') return { type, b64: toBase64(body) };
  return { type, json: JSON.parse(decoder.decode(body)) as unknown };
}

/** The app-facing content of a frame's `m`. */
export function toMessageContent(m: FrameContent): MessageContent {
  if (m.type === 'text') return { type: 'text', text: m.text ?? '' };
  if (m.type === 'json') return { type: 'json', json: m.json };
  return { type: 'binary', binary: fromBase64(m.b64 ?? '') };
}

/** A frame's `m` for app-facing content (the reverse of {@link toMessageContent}). */
export function fromMessageContent(c: MessageContent): FrameContent {
  if (c.type === 'text') return { type: 'text', text: c.text };
  if (c.type === 'json') return { type: 'json', json: c.json };
  return { type: 'binary', b64: toBase64(c.binary) };
}
