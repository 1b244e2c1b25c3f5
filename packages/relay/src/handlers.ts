/**
 * The event handlers. Each receives an unvalidated payload, validates it with its schema,
 * and returns the ack's result fields or throws a {@link ParleyError}. The acting device is
 * always `socket.data.deviceId`, set only by a successful `auth`.
 */
import { ParleyError, deviceIdOf, signedPrekeyPayload, verifyContextSignature, verifyIdentity } from '@parley/protocol/verify';
import { checkApiKey } from './apikeys.js';
import { loginRefused, verifyAuthAnswer } from './auth.js';
import { deviceRoom, type RelayContext, type RelaySocket } from './context.js';
import { onAcked, requestDrain, toWire } from './mailbox.js';
import { nodeChannels } from './cluster/redis-adapter.js';
import type { EnqueueResult, MailboxQuota } from './store/types.js';
import {
  ackSchema, authSchema, fetchBundleSchema, fetchIdentitySchema, fetchQueueSchema, fetchRevocationsSchema, parse, sendSchema, uploadPrekeysSchema,
} from './schemas.js';
import { checkStaffLogin } from './staff/login.js';
import { checkSend, loginRoles, rememberRoles } from './staff/roles.js';
import { TICKET_HANDLERS, joinStaffRoom } from './tickets/handlers.js';
import { ARCHIVE_HANDLERS } from './archive/handlers.js';
import { PURGE_HANDLERS } from './purge.js';

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
  if (d.nonceUsed) throw loginRefused('challenge already used', { reason: 'challenge' });
  d.nonceUsed = true;
  const answer = parse(authSchema, payload);
  if (!answer) throw loginRefused('malformed answer', { reason: 'malformed' });
  const deviceId = verifyAuthAnswer(answer, {
    serverNonce: d.serverNonce,
    origin: ctx.origin,
    now: ctx.now(),
    maxSkewMs: ctx.limits.authMaxSkewMs,
  });
  let role: 'device' | 'bot' = 'device';
  if (answer.apiKey !== undefined) {
    const key = await checkApiKey(ctx.store, answer.apiKey);
    if (key.status === 'revoked') throw loginRefused(`API key ${key.record.id} was revoked`, { reason: 'apiKeyRevoked' });
    if (key.status === 'unknown') throw loginRefused('unknown API key', { reason: 'apiKey' });
    d.apiKey = { hash: key.record.hash, id: key.record.id };
    role = 'bot';
  }
  // With an org key: a revoked device is refused, a credential must verify (staff/login.ts).
  const staff = ctx.staff ? await checkStaffLogin(ctx.staff, deviceId, answer.identity, answer.credential, ctx.now()) : undefined;
  const roles = loginRoles(role === 'bot', staff?.roles);
  // Remembered before the login completes, so a message to this device is judged by them at once.
  await rememberRoles(ctx, deviceId, roles);
  if (!socket.connected) throw new ParleyError('TRANSPORT', 'socket closed during auth');
  // Each socket gets its own copy of every push: a device holds a bounded number (R13).
  let sockets = ctx.deviceSockets.get(deviceId);
  if (sockets && sockets.size >= ctx.limits.maxSocketsPerDevice) {
    throw new ParleyError('RATE_LIMITED', 'too many sockets for this device', { details: { scope: 'device', max: ctx.limits.maxSocketsPerDevice } });
  }
  if (!sockets) ctx.deviceSockets.set(deviceId, (sockets = new Set()));
  sockets.add(socket);
  d.deviceId = deviceId;
  d.role = role;
  d.roles = roles;
  if (staff) d.staff = staff;
  // Agents and supervisors get the live queue (`ticket` pushes) from now on.
  await joinStaffRoom(socket);
  clearTimeout(d.authTimer);
  ctx.metrics.authenticated.inc();
  ctx.metrics.auth.inc({ result: 'success' });
  ctx.log.info({ event: 'auth', deviceId, role, roles, ...(staff ? { personId: staff.personId, expiresAt: staff.expiresAt } : {}) });
  return {
    result: { deviceId, role, roles, serverTime: ctx.now() },
    after: async () => {
      const remaining = await ctx.store.countOneTimePrekeys(deviceId);
      if (remaining < ctx.limits.prekeyLowThreshold) socket.emit('prekeysLow', { remaining });
      requestDrain(ctx, socket, true);
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
  // certificate / attestation / manifests: opaque, stored as given (clients verify them, never the relay).
  const count = await ctx.store.putPrekeys(deviceId, upload);
  ctx.log.info({
    event: 'uploadPrekeys', deviceId, uploaded: upload.oneTimePrekeys.length, available: count,
    certificate: upload.certificate?.length, attestation: upload.attestation?.length, manifests: upload.manifests?.length, disclosure: upload.disclosure?.length,
  });
  return { result: { oneTimePrekeys: count } };
};

const fetchBundle: Handler = async (ctx, socket, payload) => {
  const requester = me(socket);
  const req = parse(fetchBundleSchema, payload);
  if (!req) throw malformed('fetchBundle');
  // Per requester and per address: one device, or many fresh ones on one address, cannot scan
  // the directory (C20b).
  fetchBudget(ctx, socket, requester, 'bundle');
  // Per target, whoever asks: past the rate the bundle comes without a one-time prekey (X3DH's
  // last resort, covered by the signed prekey's replay memory), so no number of identities and
  // addresses drains a device faster than opksPerTargetPerMinute.
  const withOpk = ctx.opkLimiter.take(req.deviceId);
  const taken = await ctx.store.takeBundle(req.deviceId, { oneTimePrekey: withOpk });
  if (!taken) throw new ParleyError('SESSION_NOT_FOUND', 'no prekey bundle for that device');
  const hadOpk = taken.bundle.oneTimePrekey !== undefined;
  const opk = hadOpk ? 'yes' : withOpk ? 'no' : 'withheld';
  ctx.metrics.bundles.inc({ opk });
  ctx.log.info({ event: 'fetchBundle', deviceId: requester, target: req.deviceId, opk, remaining: taken.remaining });
  // Also when none was left to hand out: a device drained to zero must still hear of it.
  if (taken.remaining < ctx.limits.prekeyLowThreshold) {
    ctx.io.to(deviceRoom(req.deviceId)).emit('prekeysLow', { remaining: taken.remaining });
  }
  return { result: { bundle: taken.bundle, ...statements(taken) } };
};

/** Takes one bundle/identity fetch from the requester's and the address's budgets. */
function fetchBudget(ctx: RelayContext, socket: RelaySocket, requester: string, what: 'bundle' | 'identity'): void {
  if (!ctx.bundleLimiter.take(requester)) {
    throw new ParleyError('RATE_LIMITED', `too many ${what} fetches`, { details: { scope: 'requester', perMinute: ctx.limits.bundleFetchesPerMinute } });
  }
  if (!ctx.addressBundleLimiter.take(socket.data.address)) {
    throw new ParleyError('RATE_LIMITED', `too many ${what} fetches from this address`, {
      details: { scope: 'address', perMinute: ctx.limits.bundleFetchesPerMinutePerAddress },
    });
  }
}

/** The statements present on a store result, copied into an ack (absent ones omitted). */
function statements(s: { certificate?: Uint8Array; attestation?: Uint8Array; manifests?: Uint8Array; disclosure?: Uint8Array }): Record<string, Uint8Array> {
  return {
    ...(s.certificate ? { certificate: s.certificate } : {}),
    ...(s.attestation ? { attestation: s.attestation } : {}),
    ...(s.manifests ? { manifests: s.manifests } : {}),
    ...(s.disclosure ? { disclosure: s.disclosure } : {}),
  };
}

const fetchIdentity: Handler = async (ctx, socket, payload) => {
  const requester = me(socket);
  const req = parse(fetchIdentitySchema, payload);
  if (!req) throw malformed('fetchIdentity');
  // Consumes nothing, but shares the bundle budgets: one requester cannot scan the directory.
  fetchBudget(ctx, socket, requester, 'identity');
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
  // The role table (README "Roles"): customer → customer only when allowed.
  await checkSend(ctx, socket, req.to);
  const receivedAt = ctx.now();
  // Durable before the ack: the store resolves only after the commit reached the disk. The
  // quotas are checked in the same atomic step (R14), so concurrent sends cannot overshoot them.
  let stored: EnqueueResult;
  // Several nodes: the store also counts the other nodes, right behind the write.
  const countNodes = ctx.broadcastBarrier ? nodeChannels(ctx.io) : undefined;
  try {
    // One store step: the per-recipient cap (`maxQueuePerDevice`) is the quota's `perRecipient`,
    // checked with the others inside it (no separate count first: a round trip per send on Redis).
    stored = await ctx.store.enqueue({ to: req.to, from, id: req.id, envelope: req.envelope, receivedAt }, mailboxQuota(ctx), countNodes ? { countNodes } : undefined);
  } catch (e) {
    if (e instanceof ParleyError && e.code === 'STORAGE_QUOTA') {
      const quota = e.details?.['quota'];
      ctx.metrics.quotaRefusals.inc({ quota: typeof quota === 'string' ? quota : 'recipient' });
    }
    throw e;
  }
  const { seq, duplicate } = stored;
  if (duplicate) ctx.metrics.duplicates.inc();
  else ctx.metrics.stored.inc();
  // Pushed on a retry too: the first attempt may have been stored by a node that died before
  // its push left it (the recipient dedupes by (from, id)).
  const room = deviceRoom(req.to);
  const wire = toWire({ seq, to: req.to, from, id: req.id, envelope: req.envelope, receivedAt });
  ctx.metrics.delivered.inc();
  if (stored.otherNodes === 0) {
    // No other node was subscribed after the write: none holds a socket of the recipient that
    // the store would not drain to it anyway. Nothing to publish, nothing to wait for.
    ctx.io.local.to(room).emit('message', wire);
  } else {
    // Before the emit: whether the recipient has a caught-up socket on this node.
    const local = ctx.broadcastBarrier !== undefined && hasLocalSocket(ctx, room);
    ctx.io.to(room).emit('message', wire);
    // Several nodes: the push reaches Redis before the sender's ack, so a node killed right
    // after the ack cannot lose it for a recipient connected to another node. Not when the
    // recipient has a socket here: that socket has the push now; if this node dies, that socket
    // dies with it and the device's next login drains the store (README "Scaling out").
    if (!local) await ctx.broadcastBarrier?.();
  }
  ctx.log.debug({ event: 'send', deviceId: from, to: req.to, size: req.envelope.length, seq, duplicate });
  return { result: { seq, duplicate } };
};

const ack: Handler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  const req = parse(ackSchema, payload);
  if (!req) throw malformed('ack');
  // Scoped to this device: a seq of someone else's message deletes nothing.
  let deleted: number;
  try {
    deleted = await ctx.store.deleteMessages(deviceId, req.seqs);
  } catch (e) {
    // The store is away (a Redis restart): these stay queued. Pushed again by a pass from the
    // start (which waits for the store), not 30 s later, so a lost ack does not leave them.
    onAcked(ctx, deviceId, req.seqs);
    for (const s of ctx.deviceSockets.get(deviceId) ?? []) requestDrain(ctx, s, true);
    throw e;
  }
  ctx.metrics.acked.inc(deleted);
  ctx.log.debug({ event: 'ack', deviceId, count: req.seqs.length, deleted });
  // Every socket of the device on this node forgets them (one tab may ack what another holds).
  return { result: { deleted }, after: async () => onAcked(ctx, deviceId, req.seqs) };
};

const fetchQueue: Handler = async (ctx, socket, payload) => {
  const deviceId = me(socket);
  if (!parse(fetchQueueSchema, payload)) throw malformed('fetchQueue');
  const pending = await ctx.store.countPending(deviceId);
  // One more pass from the start by this socket's one drain: however many calls, one pass, and
  // nothing pushed recently and not acked is pushed again (R13).
  return { result: { pending }, after: async () => requestDrain(ctx, socket, true) };
};

const fetchRevocations: Handler = async (ctx, socket, payload) => {
  me(socket);
  if (!parse(fetchRevocationsSchema, payload)) throw malformed('fetchRevocations');
  // As stored (verified when posted); clients verify them against their pinned org key anyway.
  const lists = await ctx.store.listRevocationLists();
  return { result: { lists: lists.map((l) => l.list) } };
};

/** Whether a socket of this node is in `room` (joined: caught up with its backlog). */
function hasLocalSocket(ctx: RelayContext, room: string): boolean {
  return (ctx.io.of('/').adapter.rooms.get(room)?.size ?? 0) > 0;
}

/** The mailbox quotas of this relay's limits. */
function mailboxQuota(ctx: RelayContext): MailboxQuota {
  const l = ctx.limits;
  return {
    perPair: l.maxQueuePerPair, perRecipient: l.maxQueuePerDevice, reserve: l.queueReserve,
    reservePerSender: l.queueReservePerSender, perSender: l.maxQueuePerSender, total: l.maxQueueTotal,
  };
}

/** Handlers by event name. A Map, so a crafted name like `__proto__` finds nothing. */
export const HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['auth', auth],
  ['uploadPrekeys', uploadPrekeys],
  ['fetchBundle', fetchBundle],
  ['fetchIdentity', fetchIdentity],
  ['send', send],
  ['ack', ack],
  ['fetchQueue', fetchQueue],
  ['fetchRevocations', fetchRevocations],
  ...TICKET_HANDLERS,
  ...ARCHIVE_HANDLERS,
  ...PURGE_HANDLERS,
]);
