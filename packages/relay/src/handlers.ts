/**
 * The event handlers. Each receives an unvalidated payload, validates it with its schema,
 * and returns the ack's result fields or throws a {@link ParleyError}. The acting device is
 * always `socket.data.deviceId`, set only by a successful `auth`.
 */
import { ParleyError, deviceIdOf, signedPrekeyPayload, verifyContextSignature, verifyIdentity } from '@parley/protocol/verify';
import { verifyApiKey } from './apikeys.js';
import { verifyAuthAnswer } from './auth.js';
import { deviceRoom, type RelayContext, type RelaySocket } from './context.js';
import { onAcked, startDrain, toWire } from './mailbox.js';
import { ackSchema, authSchema, fetchBundleSchema, fetchIdentitySchema, fetchQueueSchema, parse, sendSchema, uploadPrekeysSchema } from './schemas.js';

/** A handler's outcome: the ack fields, and work to run after the ack is sent. */
export interface HandlerResult {
  result: Record<string, unknown>;
  after?: () => Promise<void>;
}

export type Handler = (ctx: RelayContext, socket: RelaySocket, payload: unknown) => Promise<HandlerResult>;

const malformed = (what: string) => new ParleyError('MALFORMED_MESSAGE', `malformed ${what} payload`);

function me(socket: RelaySocket): string {
  const id = socket.data.deviceId;
  if (!id) throw new ParleyError('UNAUTHENTICATED', 'authenticate first');
  return id;
}

const auth: Handler = async (ctx, socket, payload) => {
  const d = socket.data;
  if (d.deviceId) throw new ParleyError('USAGE', 'already authenticated');
  // One answer per nonce, right or wrong: a replay of the same answer cannot be retried.
  if (d.nonceUsed) throw new ParleyError('UNAUTHENTICATED', 'authentication failed: challenge already used');
  d.nonceUsed = true;
  const answer = parse(authSchema, payload);
  if (!answer) throw new ParleyError('UNAUTHENTICATED', 'authentication failed: malformed answer');
  const deviceId = verifyAuthAnswer(answer, {
    serverNonce: d.serverNonce,
    origin: ctx.origin,
    now: ctx.now(),
    maxSkewMs: ctx.limits.authMaxSkewMs,
  });
  let role: 'device' | 'bot' = 'device';
  if (answer.apiKey !== undefined) {
    if (!(await verifyApiKey(ctx.store, answer.apiKey))) throw new ParleyError('UNAUTHENTICATED', 'authentication failed: invalid api key');
    role = 'bot';
  }
  if (!socket.connected) throw new ParleyError('TRANSPORT', 'socket closed during auth');
  d.deviceId = deviceId;
  d.role = role;
  clearTimeout(d.authTimer);
  ctx.metrics.authenticated.inc();
  ctx.metrics.auth.inc({ result: 'success' });
  ctx.log.info({ event: 'auth', deviceId, role });
  return {
    result: { deviceId, role, serverTime: ctx.now() },
    after: async () => {
      const remaining = await ctx.store.countOneTimePrekeys(deviceId);
      if (remaining < ctx.limits.prekeyLowThreshold) socket.emit('prekeysLow', { remaining });
      await startDrain(ctx, socket);
    },
  };
};

const uploadPrekeys: Handler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  const upload = parse(uploadPrekeysSchema, payload);
  if (!upload) throw malformed('uploadPrekeys');
  // The identity must be the socket's own: nobody publishes keys for another device (R2).
  if (deviceIdOf(upload.identity) !== deviceId) throw new ParleyError('FORBIDDEN', 'identity is not the authenticated device');
  verifyIdentity(upload.identity);
  const spk = upload.signedPrekey;
  if (!verifyContextSignature(upload.identity.signingKey, 'signedPrekey', signedPrekeyPayload(spk), spk.signature)) {
    throw new ParleyError('INVALID_SIGNATURE', 'signed prekey signature does not verify');
  }
  const have = await ctx.store.countOneTimePrekeys(deviceId);
  if (have + upload.oneTimePrekeys.length > ctx.limits.maxOneTimePrekeys) {
    throw new ParleyError('STORAGE_QUOTA', 'too many one-time prekeys stored', { details: { have, max: ctx.limits.maxOneTimePrekeys } });
  }
  // certificate / attestation: opaque, stored as given (clients verify them, never the relay).
  const count = await ctx.store.putPrekeys(deviceId, upload);
  ctx.log.info({
    event: 'uploadPrekeys', deviceId, uploaded: upload.oneTimePrekeys.length, available: count,
    certificate: upload.certificate?.length, attestation: upload.attestation?.length,
  });
  return { result: { oneTimePrekeys: count } };
};

const fetchBundle: Handler = async (ctx, socket, payload) => {
  const requester = me(socket);
  const req = parse(fetchBundleSchema, payload);
  if (!req) throw malformed('fetchBundle');
  // Per requester, so one device cannot drain another's OPKs (C20b).
  if (!ctx.bundleLimiter.take(requester)) throw new ParleyError('RATE_LIMITED', 'too many bundle fetches');
  const taken = await ctx.store.takeBundle(req.deviceId);
  if (!taken) throw new ParleyError('SESSION_NOT_FOUND', 'no prekey bundle for that device');
  const hadOpk = taken.bundle.oneTimePrekey !== undefined;
  ctx.metrics.bundles.inc({ opk: hadOpk ? 'yes' : 'no' });
  ctx.log.info({ event: 'fetchBundle', deviceId: requester, target: req.deviceId, opk: hadOpk, remaining: taken.remaining });
  // Also when none was left to hand out: a device drained to zero must still hear of it.
  if (taken.remaining < ctx.limits.prekeyLowThreshold) {
    ctx.io.to(deviceRoom(req.deviceId)).emit('prekeysLow', { remaining: taken.remaining });
  }
  return { result: { bundle: taken.bundle, ...statements(taken) } };
};

/** The statements present on a store result, copied into an ack (absent ones omitted). */
function statements(s: { certificate?: Uint8Array; attestation?: Uint8Array }): Record<string, Uint8Array> {
  return {
    ...(s.certificate ? { certificate: s.certificate } : {}),
    ...(s.attestation ? { attestation: s.attestation } : {}),
  };
}

const fetchIdentity: Handler = async (ctx, socket, payload) => {
  const requester = me(socket);
  const req = parse(fetchIdentitySchema, payload);
  if (!req) throw malformed('fetchIdentity');
  // Consumes nothing, but shares the bundle budget: one requester cannot scan the directory.
  if (!ctx.bundleLimiter.take(requester)) throw new ParleyError('RATE_LIMITED', 'too many identity fetches');
  const found = await ctx.store.getIdentity(req.deviceId);
  if (!found) throw new ParleyError('SESSION_NOT_FOUND', 'no identity for that device');
  ctx.log.info({ event: 'fetchIdentity', deviceId: requester, target: req.deviceId });
  return { result: { identity: found.identity, ...statements(found) } };
};

const send: Handler = async (ctx, socket, payload) => {
  const from = me(socket);
  const env = (payload as { envelope?: unknown } | null)?.envelope;
  if (env instanceof Uint8Array && env.length > ctx.limits.maxEnvelopeBytes) {
    throw new ParleyError('PAYLOAD_TOO_LARGE', 'envelope too large', { details: { size: env.length, max: ctx.limits.maxEnvelopeBytes } });
  }
  const req = parse(sendSchema(ctx.limits.maxEnvelopeBytes), payload);
  if (!req) throw malformed('send');
  if ((await ctx.store.countPending(req.to)) >= ctx.limits.maxQueuePerDevice) {
    throw new ParleyError('STORAGE_QUOTA', 'recipient queue is full');
  }
  const receivedAt = ctx.now();
  // Durable before the ack: the store resolves only after the commit reached the disk.
  const { seq, duplicate } = await ctx.store.enqueue({ to: req.to, from, id: req.id, envelope: req.envelope, receivedAt });
  if (duplicate) ctx.metrics.duplicates.inc();
  else ctx.metrics.stored.inc();
  // Pushed on a retry too: the first attempt may have been stored by a node that died before
  // its push left it (the recipient dedupes by (from, id)).
  ctx.io.to(deviceRoom(req.to)).emit('message', toWire({ seq, to: req.to, from, id: req.id, envelope: req.envelope, receivedAt }));
  ctx.metrics.delivered.inc();
  // Several nodes: the push reaches Redis before the sender's ack, so a node killed right after
  // the ack cannot lose it for a recipient connected to another node.
  await ctx.broadcastBarrier?.();
  ctx.log.debug({ event: 'send', deviceId: from, to: req.to, size: req.envelope.length, seq, duplicate });
  return { result: { seq, duplicate } };
};

const ack: Handler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  const req = parse(ackSchema, payload);
  if (!req) throw malformed('ack');
  // Scoped to this device: a seq of someone else's message deletes nothing.
  const deleted = await ctx.store.deleteMessages(deviceId, req.seqs);
  ctx.metrics.acked.inc(deleted);
  ctx.log.debug({ event: 'ack', deviceId, count: req.seqs.length, deleted });
  return { result: { deleted }, after: () => onAcked(ctx, socket, deleted) };
};

const fetchQueue: Handler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  if (!parse(fetchQueueSchema, payload)) throw malformed('fetchQueue');
  const pending = await ctx.store.countPending(deviceId);
  return { result: { pending }, after: () => startDrain(ctx, socket) };
};

/** Handlers by event name. A Map, so a crafted name like `__proto__` finds nothing. */
export const HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['auth', auth],
  ['uploadPrekeys', uploadPrekeys],
  ['fetchBundle', fetchBundle],
  ['fetchIdentity', fetchIdentity],
  ['send', send],
  ['ack', ack],
  ['fetchQueue', fetchQueue],
]);
