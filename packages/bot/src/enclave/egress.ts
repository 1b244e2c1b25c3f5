/**
 * The enclave's side of `ctx.fetch` (README "Egress policy and ctx.fetch"; docs/threats.md B7).
 * Runs only inside the enclave, never in the handler worker.
 *
 * The handler worker asks (`EgressRequestMessage`, validated here: the handler's code can post
 * anything); the enclave checks the URL's origin against the egress policy it measured, makes
 * the request with its own `fetch` (captured when this module loads), follows redirects itself,
 * re-checking every hop against the policy, and answers with the whole response, bounded in
 * size and time. A refusal is `FORBIDDEN` naming the host and the fix.
 */
import { ParleyError } from '@parley/protocol/errors';
import { egressAllows } from '../egress-policy.js';
import {
  DEFAULT_EGRESS_TIMEOUT_MS,
  EGRESS_METHODS,
  MAX_EGRESS_REQUEST_BYTES,
  MAX_EGRESS_RESPONSE_BYTES,
  MAX_EGRESS_TIMEOUT_MS,
  type EgressRequestMessage,
  type EgressResponseWire,
} from './handler-egress-api.js';

/** The enclave's own fetch, taken before anything else could replace it. */
const realFetch = globalThis.fetch.bind(globalThis);

const MAX_REDIRECTS = 5;
const MAX_HEADERS = 64;
const MAX_HEADER_BYTES = 8 * 1024;
const MAX_URL_LENGTH = 8 * 1024;
/** Request headers the handler may not set (they would change what the policy checked). */
const FORBIDDEN_HEADER = /^(host|connection|content-length|transfer-encoding|upgrade|keep-alive|te|trailer|expect|proxy-.*)$/i;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** A request from the handler worker, checked (fresh copies); `undefined` for anything malformed. */
export function parseEgressRequest(raw: unknown): EgressRequestMessage | undefined {
  if (!isObject(raw) || raw.t !== 'fetch') return undefined;
  const { run, seq, url, method, headers, body, timeoutMs } = raw;
  if (!isCount(run) || !isCount(seq) || typeof url !== 'string' || typeof method !== 'string' || !Array.isArray(headers)) return undefined;
  if (body !== undefined && (!(body instanceof Uint8Array) || !(body.buffer instanceof ArrayBuffer))) return undefined;
  if (timeoutMs !== undefined && typeof timeoutMs !== 'number') return undefined;
  const pairs: [string, string][] = [];
  for (const h of headers.slice(0, MAX_HEADERS + 1)) {
    if (!Array.isArray(h) || h.length !== 2 || typeof h[0] !== 'string' || typeof h[1] !== 'string') return undefined;
    pairs.push([h[0], h[1]]);
  }
  return {
    t: 'fetch',
    run,
    seq,
    url,
    method,
    headers: pairs,
    ...(body !== undefined ? { body: new Uint8Array(body) } : {}),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  };
}

/** @throws ParleyError `FORBIDDEN` when `url`'s origin is not in the policy. */
function checkAllowed(policy: readonly string[], url: URL): void {
  if (egressAllows(policy, url)) return;
  const host = url.host.slice(0, 200);
  throw new ParleyError(
    'FORBIDDEN',
    `ctx.fetch to ${url.protocol}//${host} is outside the bot's egress policy: add ${url.protocol === 'https:' ? host : `${url.protocol}//${host}`} to the egress option (the measurement changes, so clients must pin the new one)`,
    { details: { reason: 'egress', host, protocol: url.protocol.replace(':', '') } },
  );
}

function parseUrl(href: string, base?: URL): URL {
  let url: URL;
  try {
    url = base ? new URL(href, base) : new URL(href);
  } catch {
    throw new ParleyError('USAGE', 'ctx.fetch needs an absolute http(s) URL', { details: { reason: 'egressUrl' } });
  }
  if (url.username !== '' || url.password !== '') throw new ParleyError('USAGE', 'ctx.fetch URLs carry no credentials: send them in a header', { details: { reason: 'egressUrl' } });
  return url;
}

function checkRequest(req: EgressRequestMessage): { method: string; headers: [string, string][]; timeoutMs: number } {
  const method = req.method.toUpperCase();
  if (!(EGRESS_METHODS as readonly string[]).includes(method)) throw new ParleyError('USAGE', `ctx.fetch method must be one of ${EGRESS_METHODS.join(', ')}`);
  if (req.body && (method === 'GET' || method === 'HEAD')) throw new ParleyError('USAGE', `ctx.fetch ${method} takes no body`);
  if (req.body && req.body.length > MAX_EGRESS_REQUEST_BYTES) throw new ParleyError('PAYLOAD_TOO_LARGE', 'ctx.fetch body is too large', { details: { size: req.body.length, max: MAX_EGRESS_REQUEST_BYTES } });
  if (req.headers.length > MAX_HEADERS) throw new ParleyError('USAGE', `ctx.fetch takes at most ${MAX_HEADERS} headers`);
  for (const [name, value] of req.headers) {
    if (!TOKEN.test(name) || value.length > MAX_HEADER_BYTES || /[\r\n\0]/.test(value)) throw new ParleyError('USAGE', 'ctx.fetch header names must be tokens, values at most 8 KiB on one line');
    if (FORBIDDEN_HEADER.test(name)) throw new ParleyError('USAGE', `ctx.fetch may not set the ${name.toLowerCase()} header`);
  }
  const timeoutMs = req.timeoutMs ?? DEFAULT_EGRESS_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_EGRESS_TIMEOUT_MS) throw new ParleyError('USAGE', `ctx.fetch timeoutMs must be 1..${MAX_EGRESS_TIMEOUT_MS}`);
  return { method, headers: req.headers.map(([n, v]) => [n, v]), timeoutMs };
}

/** A failed request as `TRANSPORT`, with the reason the relay link uses for the same failures. */
function transportError(e: unknown, signal: AbortSignal): ParleyError {
  if (e instanceof ParleyError) return e;
  if (signal.aborted) return new ParleyError('TRANSPORT', 'ctx.fetch timed out', { details: { reason: 'timeout' } });
  const cause = (e as { cause?: { code?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code.slice(0, 60) : undefined;
  const reason = code === 'ECONNREFUSED' ? 'refused' : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'dns' : code && /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code) ? 'tls' : 'closed';
  return new ParleyError('TRANSPORT', `ctx.fetch failed (${reason})`, { details: { reason, ...(code ? { cause: code } : {}) } });
}

async function readBounded(res: Response): Promise<Uint8Array> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > MAX_EGRESS_RESPONSE_BYTES) {
    await res.body?.cancel().catch(() => undefined);
    throw new ParleyError('PAYLOAD_TOO_LARGE', 'ctx.fetch response body is too large', { details: { size: declared, max: MAX_EGRESS_RESPONSE_BYTES } });
  }
  if (!res.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_EGRESS_RESPONSE_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw new ParleyError('PAYLOAD_TOO_LARGE', 'ctx.fetch response body is too large', { details: { max: MAX_EGRESS_RESPONSE_BYTES } });
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Makes the handler's request under `policy` (canonical origins).
 * @throws ParleyError `FORBIDDEN` (`reason: 'egress'`, `host`) for an origin outside the policy,
 *   on the first request or any redirect; `USAGE` for a malformed request; `PAYLOAD_TOO_LARGE`;
 *   `TRANSPORT` (`reason`: `refused`, `dns`, `tls`, `timeout`, `closed`) when the request fails.
 */
export async function egressFetch(policy: readonly string[], req: EgressRequestMessage): Promise<EgressResponseWire> {
  if (req.url.length > MAX_URL_LENGTH) throw new ParleyError('USAGE', 'ctx.fetch URL is too long', { details: { reason: 'egressUrl' } });
  let url = parseUrl(req.url);
  checkAllowed(policy, url);
  let { method, headers, timeoutMs } = checkRequest(req);
  let body: Uint8Array | undefined = req.body;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    for (let hop = 0; ; hop++) {
      const res = await realFetch(url, { method, headers, ...(body ? { body: body as unknown as BodyInit } : {}), redirect: 'manual', signal });
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location !== null) {
        await res.body?.cancel().catch(() => undefined);
        if (hop >= MAX_REDIRECTS) throw new ParleyError('TRANSPORT', `ctx.fetch followed ${MAX_REDIRECTS} redirects`, { details: { reason: 'closed' } });
        const next = parseUrl(location, url);
        checkAllowed(policy, next);
        if (next.origin !== url.origin) headers = headers.filter(([n]) => !/^(authorization|cookie)$/i.test(n));
        // As fetch does: 303 (and 301/302 after a POST) continue as GET without the body.
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
          method = method === 'HEAD' ? 'HEAD' : 'GET';
          body = undefined;
          headers = headers.filter(([n]) => !/^content-/i.test(n));
        }
        url = next;
        continue;
      }
      const responseHeaders: [string, string][] = [];
      res.headers.forEach((value, name) => {
        if (responseHeaders.length < 100) responseHeaders.push([name, value.slice(0, MAX_HEADER_BYTES)]);
      });
      return { status: res.status, statusText: res.statusText.slice(0, 200), url: url.href, headers: responseHeaders, body: await readBounded(res) };
    }
  } catch (e) {
    throw transportError(e, signal);
  }
}
