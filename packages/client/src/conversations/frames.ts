/**
 * Small helpers over conversation frames the client needs before the book sees them: a lenient
 * peek at a frame's kind and ticket (the book validates strictly afterwards), and the ticket
 * reference of a handoff request.
 */
import { getCrypto } from '@parley/protocol';

/** The fields of a frame the client acts on before the book applies it. Never throws. */
export interface FramePeek {
  readonly k?: string;
  readonly c?: string;
  readonly ticket?: string;
  readonly queue?: string;
}

const decoder = new TextDecoder('utf-8', { fatal: false });

/** Reads `k`, `c`, `ticket` and `queue` of a frame if it is JSON; anything else gives `{}` (the book refuses it). */
export function peekFrame(bytes: Uint8Array): FramePeek {
  try {
    const v: unknown = JSON.parse(decoder.decode(bytes));
    if (typeof v !== 'object' || v === null) return {};
    const r = v as Record<string, unknown>;
    const s = (x: unknown) => (typeof x === 'string' ? x : undefined);
    const out: { k?: string; c?: string; ticket?: string; queue?: string } = {};
    const k = s(r['k']);
    const c = s(r['c']);
    const ticket = s(r['ticket']);
    const queue = s(r['queue']);
    if (k !== undefined) out.k = k;
    if (c !== undefined) out.c = c;
    if (ticket !== undefined) out.ticket = ticket;
    if (queue !== undefined) out.queue = queue;
    return out;
  } catch {
    return {};
  }
}

const REF_CONTEXT = new TextEncoder().encode('parley/handoff-ref/v1');

/**
 * The ticket reference for the handoff request `messageId` in `conversation`: 22 chars of
 * base64url, the same on every retry (the relay's `ticketOpen` is idempotent on it), and, since
 * the conversation id never reaches the relay, linked to nothing the relay sees.
 */
export function handoffRef(conversation: string, messageId: string): string {
  const input = new TextEncoder().encode(`${conversation}\n${messageId}`);
  const all = new Uint8Array(REF_CONTEXT.length + 1 + input.length);
  all.set(REF_CONTEXT, 0);
  all.set(input, REF_CONTEXT.length + 1);
  return base64url(getCrypto().sha256(all).subarray(0, 16));
}

/** A fresh random ticket reference (the customer's own request). */
export function randomRef(): string {
  return base64url(getCrypto().randomBytes(16));
}

function base64url(bytes: Uint8Array): string {
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
