/**
 * `ctx.fetch`, the handler's only way to the network (README "Egress policy and ctx.fetch";
 * docs/threats.md B7): the handler-worker side and the messages it exchanges with the enclave.
 * Runs in the handler worker (part of its key-free import closure) and is imported for its types
 * by the enclave side (`egress.ts`).
 *
 * The handler worker has no `fetch` of its own (`handler-sandbox.ts` removes it): it asks the
 * enclave, which checks the URL against the measured egress policy, makes the request, and sends
 * back the whole (bounded) response. So the policy is enforced outside the handler's isolate,
 * by code the handler cannot patch.
 */
import { ParleyError } from '@parley/protocol/errors';
import type { EgressFetchInit, EgressResponse } from '../handler-api.js';
import type { EchoedError } from './handler-protocol.js';

/** Largest request body `ctx.fetch` sends. */
export const MAX_EGRESS_REQUEST_BYTES = 1024 * 1024;
/** Largest response body `ctx.fetch` returns (a bigger one is refused with `PAYLOAD_TOO_LARGE`). */
export const MAX_EGRESS_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Default time limit of one `ctx.fetch` (the whole exchange, redirects included). */
export const DEFAULT_EGRESS_TIMEOUT_MS = 10_000;
/** Largest `timeoutMs` a handler may ask for. */
export const MAX_EGRESS_TIMEOUT_MS = 60_000;
/** Requests one handler run may make. */
export const MAX_EGRESS_REQUESTS_PER_RUN = 100;
/** Methods `ctx.fetch` sends. */
export const EGRESS_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** Handler worker → enclave: one request of run `run`. */
export interface EgressRequestMessage {
  readonly t: 'fetch';
  readonly run: number;
  readonly seq: number;
  readonly url: string;
  readonly method: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body?: Uint8Array;
  readonly timeoutMs?: number;
}

/** A response as it crosses back: status line, headers, the whole body. */
export interface EgressResponseWire {
  readonly status: number;
  readonly statusText: string;
  /** The URL answered (after redirects). */
  readonly url: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Uint8Array;
}

/** Enclave → handler worker: the answer to request `seq` of run `run`. */
export interface EgressAnswerMessage {
  readonly t: 'fetched';
  readonly run: number;
  readonly seq: number;
  readonly response?: EgressResponseWire;
  readonly error?: EchoedError;
}

function toBody(body: EgressFetchInit['body']): Uint8Array | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body.slice();
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  throw new ParleyError('USAGE', 'ctx.fetch body must be a string, a Uint8Array or an ArrayBuffer');
}

function toHeaders(headers: EgressFetchInit['headers']): [string, string][] {
  if (headers === undefined) return [];
  const entries = Array.isArray(headers) ? headers : Object.entries(headers);
  return entries.map((e) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') throw new ParleyError('USAGE', 'ctx.fetch headers must be strings');
    return [e[0], e[1]];
  });
}

/** The handler's view of a response. */
function response(wire: EgressResponseWire): EgressResponse {
  const headers: Record<string, string> = {};
  for (const [k, v] of wire.headers) headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
  const body = wire.body;
  return Object.freeze({
    status: wire.status,
    statusText: wire.statusText,
    ok: wire.status >= 200 && wire.status < 300,
    url: wire.url,
    headers: Object.freeze(headers),
    text: async () => new TextDecoder().decode(body),
    json: async () => JSON.parse(new TextDecoder().decode(body)) as unknown,
    arrayBuffer: async () => body.slice().buffer,
    bytes: async () => body.slice(),
  });
}

/**
 * The handler worker's side: `fetch(run, …)` posts a request and waits for the enclave's
 * answer; `answer` settles it. `rethrowable` turns an echoed error into the error the handler sees.
 */
export class EgressClient {
  readonly #post: (m: EgressRequestMessage) => void;
  readonly #rethrowable: (e: EchoedError) => unknown;
  readonly #waiting = new Map<string, { resolve: (r: EgressResponse) => void; reject: (e: unknown) => void }>();
  #seq = 0;

  constructor(post: (m: EgressRequestMessage) => void, rethrowable: (e: EchoedError) => unknown) {
    this.#post = post;
    this.#rethrowable = rethrowable;
  }

  /** `ctx.fetch` of run `run`. */
  fetch(run: number, url: string | URL, init: EgressFetchInit = {}): Promise<EgressResponse> {
    return new Promise<EgressResponse>((resolve, reject) => {
      const href = url instanceof URL ? url.href : url;
      if (typeof href !== 'string') throw new ParleyError('USAGE', 'ctx.fetch takes a URL string or a URL');
      const body = toBody(init.body);
      if (body && body.length > MAX_EGRESS_REQUEST_BYTES) throw new ParleyError('PAYLOAD_TOO_LARGE', 'ctx.fetch body is too large', { details: { size: body.length, max: MAX_EGRESS_REQUEST_BYTES } });
      const seq = this.#seq++;
      this.#waiting.set(`${run}/${seq}`, { resolve, reject });
      this.#post({
        t: 'fetch',
        run,
        seq,
        url: href,
        method: typeof init.method === 'string' ? init.method.toUpperCase() : 'GET',
        headers: toHeaders(init.headers),
        ...(body ? { body } : {}),
        ...(init.timeoutMs !== undefined ? { timeoutMs: init.timeoutMs } : {}),
      });
    });
  }

  /** The enclave answered. */
  answer(m: EgressAnswerMessage): void {
    const key = `${m.run}/${m.seq}`;
    const w = this.#waiting.get(key);
    if (!w) return;
    this.#waiting.delete(key);
    if (m.error || !m.response) w.reject(m.error ? this.#rethrowable(m.error) : new ParleyError('INTERNAL', 'ctx.fetch got no answer'));
    else w.resolve(response(m.response));
  }
}
