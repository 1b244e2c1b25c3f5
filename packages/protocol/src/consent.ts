/**
 * Consent requests and consent receipts (docs/threats.md P1). Pure: no I/O, no private key.
 *
 * - A **consent request** names a purpose, the personal-data fields asked for, how long they are
 *   kept and who controls them. {@link checkConsentRequest} validates one; its
 *   {@link consentRequestHash} (SHA-256 of a versioned binary encoding) binds a receipt to it.
 * - A **consent receipt** is the customer's answer (`granted`, `denied`) or a withdrawal
 *   (`withdrawn`, naming the receipt withdrawn), signed by the customer's Ed25519 identity key
 *   with context `consentReceipt` over {@link consentReceiptPayload}: a versioned binary
 *   encoding (ByteWriter, big-endian, u8 length-prefixed UTF-8 strings) of the receipt id, the
 *   request hash, the request id, the conversation id, the purpose, the fields, the retention,
 *   the controller, the decision, the withdrawn receipt id and the time. Receipts travel as a
 *   JSON object ({@link ConsentReceipt}, signature in base64) inside conversation frames.
 * - {@link verifyConsentReceipt} checks the signature (`INVALID_SIGNATURE`) and the binding to
 *   the conversation and request (`FORBIDDEN` `noConsent` with `details.why`).
 */
import { fromBase64, toBase64, toHex } from './bytes.js';
import { ByteWriter } from './codec.js';
import { contextMessage } from './contexts.js';
import { getCrypto } from './crypto/index.js';
import { ParleyError } from './errors.js';

/** Version byte of the request-hash and receipt-payload encodings. */
export const CONSENT_FORMAT = 1;
/** Most fields one consent request (or form) names. */
export const MAX_CONSENT_FIELDS = 32;
/** Longest purpose, in characters. */
export const MAX_CONSENT_PURPOSE_CHARS = 200;
/** Longest controller name, in characters. */
export const MAX_CONSENT_CONTROLLER_CHARS = 100;
/** Longest retention, in days (10 years). */
export const MAX_CONSENT_RETENTION_DAYS = 3650;
/** Ids of requests, receipts and forms: 1-64 chars of [A-Za-z0-9_-]. */
export const CONSENT_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** Field names: a letter, then up to 63 of [A-Za-z0-9_]. */
export const CONSENT_FIELD_PATTERN = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const HASH_PATTERN = /^[0-9a-f]{64}$/;
const CONVERSATION_PATTERN = /^[A-Za-z0-9_-]{22}$/;
const DEVICE_PATTERN = /^[0-9a-f]{32}$/;
const B64_PATTERN = /^[A-Za-z0-9+/]{86}==$/;

/** What a consent request asks for. */
export interface ConsentRequestBody {
  /** Chosen by the requester (1-64 chars of [A-Za-z0-9_-]); unique per conversation. */
  readonly id: string;
  /** Why the data is asked for, in the customer's words (at most 200 chars). */
  readonly purpose: string;
  /** The named fields (1-32 distinct names, a letter then [A-Za-z0-9_]). */
  readonly fields: readonly string[];
  /** How long the values are kept, in days (0-3650). */
  readonly retentionDays: number;
  /** Who controls the data (at most 100 chars). */
  readonly controller: string;
}

/** The customer's decision a receipt records. */
export type ConsentDecision = 'granted' | 'denied' | 'withdrawn';

/** A consent receipt before its signature. */
export interface UnsignedConsentReceipt {
  readonly v: 1;
  /** Receipt id (1-64 chars of [A-Za-z0-9_-]). */
  readonly id: string;
  /** {@link consentRequestHash} of the request answered (hex). */
  readonly request: string;
  readonly requestId: string;
  /** The conversation the receipt belongs to. */
  readonly conversation: string;
  readonly purpose: string;
  readonly fields: readonly string[];
  readonly retentionDays: number;
  readonly controller: string;
  readonly decision: ConsentDecision;
  /** With `withdrawn`: the id of the receipt withdrawn. */
  readonly withdraws?: string;
  /** The signer's device id (the customer's device). */
  readonly signer: string;
  /** Signer's clock, ms since the epoch. */
  readonly at: number;
}

/** A signed consent receipt. */
export interface ConsentReceipt extends UnsignedConsentReceipt {
  /** Ed25519 signature (base64), context `consentReceipt`, over {@link consentReceiptPayload}. */
  readonly sig: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function usage(what: string): never {
  throw new ParleyError('USAGE', `consent: ${what}`);
}

function str(v: unknown, max: number, what: string, fail: (w: string) => never): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > max) fail(`${what} must be a string of 1-${max} chars`);
  return v;
}

function checkFields(v: unknown, fail: (w: string) => never): string[] {
  if (!Array.isArray(v) || v.length === 0 || v.length > MAX_CONSENT_FIELDS) fail(`fields must name 1-${MAX_CONSENT_FIELDS} fields`);
  for (const f of v) if (typeof f !== 'string' || !CONSENT_FIELD_PATTERN.test(f)) fail('a field name has the wrong form (a letter, then up to 63 of [A-Za-z0-9_])');
  if (new Set(v).size !== v.length) fail('fields name a field twice');
  return [...(v as string[])];
}

function checkRetention(v: unknown, fail: (w: string) => never): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > MAX_CONSENT_RETENTION_DAYS) fail(`retentionDays must be a whole number 0-${MAX_CONSENT_RETENTION_DAYS}`);
  return v as number;
}

/**
 * Validates a consent request body (exactly its five fields).
 * @param code the error code on refusal: `USAGE` (building one) or `MALFORMED_MESSAGE` (received).
 */
export function checkConsentRequest(v: unknown, code: 'USAGE' | 'MALFORMED_MESSAGE' = 'USAGE'): ConsentRequestBody {
  const fail = (w: string): never => {
    throw new ParleyError(code, `consent request refused: ${w}`);
  };
  if (!isRecord(v)) fail('not an object');
  const r = v as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!['id', 'purpose', 'fields', 'retentionDays', 'controller'].includes(k)) fail(`unknown field ${k}`);
  if (typeof r.id !== 'string' || !CONSENT_ID_PATTERN.test(r.id)) fail('id must be 1-64 chars of [A-Za-z0-9_-]');
  return {
    id: r.id as string,
    purpose: str(r.purpose, MAX_CONSENT_PURPOSE_CHARS, 'purpose', fail),
    fields: checkFields(r.fields, fail),
    retentionDays: checkRetention(r.retentionDays, fail),
    controller: str(r.controller, MAX_CONSENT_CONTROLLER_CHARS, 'controller', fail),
  };
}

/** SHA-256 (hex) of the request's versioned binary encoding (format byte, then each field in order). */
export function consentRequestHash(body: ConsentRequestBody): string {
  const b = checkConsentRequest(body);
  const w = new ByteWriter(512).u8(CONSENT_FORMAT).shortString('request').shortString(b.id).bytes(new TextEncoder().encode(b.purpose));
  w.u8(b.fields.length);
  for (const f of b.fields) w.shortString(f);
  w.u32(b.retentionDays).bytes(new TextEncoder().encode(b.controller));
  return toHex(getCrypto().sha256(w.finish()));
}

/** The exact bytes a receipt's signature covers (before the context prefix). */
export function consentReceiptPayload(r: UnsignedConsentReceipt): Uint8Array {
  const enc = new TextEncoder();
  const w = new ByteWriter(1024).u8(CONSENT_FORMAT).shortString('receipt').shortString(r.id).shortString(r.request).shortString(r.requestId);
  w.shortString(r.conversation).bytes(enc.encode(r.purpose)).u8(r.fields.length);
  for (const f of r.fields) w.shortString(f);
  w.u32(r.retentionDays).bytes(enc.encode(r.controller)).shortString(r.decision).shortString(r.withdraws ?? '').shortString(r.signer).u64(r.at);
  return w.finish();
}

/**
 * Validates a receipt's shape (a received one: `MALFORMED_MESSAGE`). The signature is not
 * checked here: see {@link verifyConsentReceipt}.
 */
export function checkConsentReceipt(v: unknown, code: 'USAGE' | 'MALFORMED_MESSAGE' = 'MALFORMED_MESSAGE'): ConsentReceipt {
  const fail = (w: string): never => {
    throw new ParleyError(code, `consent receipt refused: ${w}`);
  };
  if (!isRecord(v)) fail('not an object');
  const r = v as Record<string, unknown>;
  const allowed = ['v', 'id', 'request', 'requestId', 'conversation', 'purpose', 'fields', 'retentionDays', 'controller', 'decision', 'withdraws', 'signer', 'at', 'sig'];
  for (const k of Object.keys(r)) if (!allowed.includes(k)) fail(`unknown field ${k}`);
  if (r.v !== 1) fail('unknown version');
  for (const k of ['id', 'requestId'] as const) if (typeof r[k] !== 'string' || !CONSENT_ID_PATTERN.test(r[k] as string)) fail(`${k} has the wrong form`);
  if (typeof r.request !== 'string' || !HASH_PATTERN.test(r.request)) fail('request hash has the wrong form');
  if (typeof r.conversation !== 'string' || !CONVERSATION_PATTERN.test(r.conversation)) fail('conversation id has the wrong form');
  if (typeof r.signer !== 'string' || !DEVICE_PATTERN.test(r.signer)) fail('signer has the wrong form');
  if (!['granted', 'denied', 'withdrawn'].includes(r.decision as string)) fail('decision');
  const withdrawn = r.decision === 'withdrawn'; // ct-ok: public decision
  if (withdrawn !== (r.withdraws !== undefined)) fail('withdraws goes with decision withdrawn only');
  if (withdrawn && (typeof r.withdraws !== 'string' || !CONSENT_ID_PATTERN.test(r.withdraws))) fail('withdraws has the wrong form');
  if (!Number.isSafeInteger(r.at) || (r.at as number) < 0) fail('time');
  if (typeof r.sig !== 'string' || !B64_PATTERN.test(r.sig)) fail('signature has the wrong form');
  return {
    v: 1,
    id: r.id as string,
    request: r.request as string,
    requestId: r.requestId as string,
    conversation: r.conversation as string,
    purpose: str(r.purpose, MAX_CONSENT_PURPOSE_CHARS, 'purpose', fail),
    fields: checkFields(r.fields, fail),
    retentionDays: checkRetention(r.retentionDays, fail),
    controller: str(r.controller, MAX_CONSENT_CONTROLLER_CHARS, 'controller', fail),
    decision: r.decision as ConsentDecision,
    ...(withdrawn ? { withdraws: r.withdraws as string } : {}),
    signer: r.signer as string,
    at: r.at as number,
    sig: r.sig as string,
  };
}

/**
 * Builds an unsigned receipt answering `request` in `conversation`.
 * @throws ParleyError `USAGE` for a bad request or id.
 */
export function consentReceiptFor(
  request: ConsentRequestBody,
  o: { id: string; conversation: string; signer: string; decision: ConsentDecision; withdraws?: string; at: number },
): UnsignedConsentReceipt {
  const b = checkConsentRequest(request);
  if (!CONSENT_ID_PATTERN.test(o.id)) usage('receipt id must be 1-64 chars of [A-Za-z0-9_-]');
  return {
    v: 1, id: o.id, request: consentRequestHash(b), requestId: b.id, conversation: o.conversation, purpose: b.purpose, fields: [...b.fields],
    retentionDays: b.retentionDays, controller: b.controller, decision: o.decision, ...(o.withdraws === undefined ? {} : { withdraws: o.withdraws }),
    signer: o.signer, at: o.at,
  };
}

/** Attaches a signature (made by the engine's `signConsent`) to a receipt. */
export function withConsentSignature(r: UnsignedConsentReceipt, signature: Uint8Array): ConsentReceipt {
  return { ...r, sig: toBase64(signature) };
}

/** What a receipt must be bound to. */
export interface ConsentReceiptExpectation {
  /** The conversation the receipt is presented in. */
  readonly conversation: string;
  /** The request's hash, when the receipt answers a request this side knows. */
  readonly request?: string;
}

/**
 * Verifies a receipt: its shape, its signature by `signingKey` (the signer's Ed25519 identity
 * key), and that it belongs to `expect.conversation` (and to `expect.request`).
 * @throws ParleyError `MALFORMED_MESSAGE` (shape), `INVALID_SIGNATURE` (tampered or signed by
 *   another key), `FORBIDDEN` `noConsent` with `details.why` `otherConversation` or `otherRequest`.
 */
export function verifyConsentReceipt(receipt: unknown, signingKey: Uint8Array, expect: ConsentReceiptExpectation): ConsentReceipt {
  const r = checkConsentReceipt(receipt);
  const { sig, ...unsigned } = r;
  if (!getCrypto().ed25519Verify(signingKey, contextMessage('consentReceipt', consentReceiptPayload(unsigned)), fromBase64(sig))) {
    throw new ParleyError('INVALID_SIGNATURE', 'consent receipt refused: its signature does not verify with the signer\'s identity key (tampered or forged)', {
      details: { reason: 'consentReceipt' },
    });
  }
  if (r.conversation !== expect.conversation) { // ct-ok: public conversation ids
    throw new ParleyError('FORBIDDEN', 'consent receipt refused: it was given in another conversation', { details: { reason: 'noConsent', why: 'otherConversation' } });
  }
  if (expect.request !== undefined && r.request !== expect.request) { // ct-ok: public hashes
    throw new ParleyError('FORBIDDEN', 'consent receipt refused: it answers another request', { details: { reason: 'noConsent', why: 'otherRequest' } });
  }
  return r;
}
