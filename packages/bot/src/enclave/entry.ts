/**
 * The enclave worker's entry point. Runs only inside the worker.
 *
 * Everything secret lives here: the sealing key, the bot's identity and prekeys, the sessions,
 * the plaintext and the handler. The host reaches it only through the messages of
 * `rpc/messages.ts`, each validated on arrival; an invalid message gets a typed error and
 * changes nothing (docs/threats.md B4). No key operation runs before a message has been validated,
 * and the only signatures the enclave makes are under the `relayAuth` context (over a payload it
 * builds itself) and the `botAttestation` context.
 */
import { parentPort } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { format } from 'node:util';
import { ParleyError, initCrypto, getCrypto, utf8, concatBytes, toHex, isSessionReset } from '@parley/protocol';
import { resetReasonOf } from '@parley/engine';
import {
  isMethod,
  MAX_GIVEN_UP_IDS,
  parseHostMessage,
  parseParams,
  toWireError,
  type EnclaveMessage,
  type MethodName,
  type Params,
  type Result,
  type SealedRecord,
} from '../rpc/messages.js';
import { attestationPayload, type BotAttestation } from '../attestation.js';
import { enclaveCodeFiles, handlerCodeFiles, measure, ORG_KEY_MEASUREMENT_LABEL } from '../measurement.js';
import { readFileSync } from 'node:fs';
import { deriveAnchorKey } from './seal.js';
import { loadSealingSecret, RollbackAnchor } from './secret.js';
import { SealedKeyValueStore } from './sealed-store.js';
import { HandlerQueue, HandlerWorker, type BotMessage, type RunActions, type RunOutcome } from './handler.js';
import { openEngine, type EnclaveEngine, type ReceivedMessage } from './engine.js';
import { BotConversations, type ConversationRun, type TakenFrame } from './conversations.js';
import { consentRequestId } from './consent-runs.js';
import { BotArchiver } from './archiver.js';
import { decodeContent, type OutgoingContent } from '@parley/protocol';
import { TestingKeyTap } from './unsafe-testing.js';
import { processPort, type EnclavePort } from './process-port.js';

// A worker thread (worker mode) or a child process with an IPC channel (process mode, README
// "Enclave modes: worker and process"): the same messages either way.
const port: EnclavePort = parentPort ?? processPort();

// The enclave's console writes straight to the process's file descriptors: a worker's
// `process.stdout` is piped through the host thread, and handler logs must not be.
for (const [name, fd] of [['log', 1], ['info', 1], ['debug', 1], ['warn', 2], ['error', 2]] as const) {
  (console as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
    try {
      writeSync(fd, `[parley-enclave] ${format(...args)}\n`);
    } catch {
      // a closed descriptor is not worth crashing the enclave over
    }
  };
}

/** Concurrent handler runs across conversations. */
const MAX_CONCURRENT_HANDLERS = 64;
/**
 * How long a reply waits for the bundle of a customer whose sessions a reset archived (the host
 * fetches it from the relay); the enclave asks the host again after this long.
 */
const BUNDLE_WAIT_MS = 30_000;

interface State {
  store: SealedKeyValueStore;
  engine: EnclaveEngine;
  /** The handler's own worker (a separate isolate without keys): the enclave never imports the handler. */
  handler: HandlerWorker;
  measurement: Uint8Array;
  queue: HandlerQueue;
  tap: TestingKeyTap | undefined;
  /** Failures of one message before it is quarantined (`maxHandlerFailures`). */
  maxFailures: number;
  /** What the customer gets when a run fails (`failureReply`), if anything. */
  failureReply: OutgoingContent | undefined;
  /** Conversations with several members (sealed in the same store). */
  conversations: BotConversations;
  /** What a customer whose handoff ticket waits unclaimed gets (`handoffUnclaimedReply`), if anything. */
  handoffUnclaimedReply: OutgoingContent | undefined;
  /** The bot's own messages sealed to the compliance archive (archiver.ts), when its disclosure is on. */
  archiver: BotArchiver | undefined;
}

/** A message the handler runs for: one-to-one, or in a conversation (`conversation` set). */
type HandlerInput = ReceivedMessage | ConversationRun;

const inConversation = (m: HandlerInput): m is ConversationRun => 'conversation' in m && typeof m.conversation === 'string';

/** The message's own fields (the conversation id is replaced by the conversation's facts). */
function withoutConversation(m: HandlerInput): ReceivedMessage {
  if (!inConversation(m)) return m;
  const { conversation, ...rest } = m;
  void conversation;
  return rest as ReceivedMessage;
}

/** `ctx.state` of a conversation: one sealed record (README "Handler state"). */
const STATE_PREFIX = 'handler-state/';
/** Failures so far of a message not yet consumed: `{ failures, replied }` (README "Handler limits and failures"). */
const FAILURES_PREFIX = 'handler-failures/';
/** The measurement entry of dev mode (README "Handler limits and failures"). */
const DEV_MODE_LABEL = 'parley:dev-mode';
/** Default `maxHandlerFailures`. */
const DEFAULT_MAX_HANDLER_FAILURES = 3;
/** The reply index of the failure reply: deterministic per message, never a handler reply's (those stop at 1000). */
const FAILURE_REPLY_INDEX = 0xffff;
const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

let state: State | undefined;
let initialising = false;
let nextReq = 1;
const pendingPersists = new Map<number, { resolve: () => void; reject: (e: unknown) => void }>();

function post(msg: EnclaveMessage): void {
  port.postMessage(msg);
}

/** Ends the worker: the supervisor restarts it from the sealed state. Used when memory may be ahead of disk. */
function poison(reason: string): never {
  try {
    writeSync(2, `[parley-enclave] fatal: ${reason}; exiting for a restart from sealed state\n`);
  } finally {
    process.exit(70);
  }
}

function persist(puts: SealedRecord[], dels: string[]): Promise<void> {
  const reqId = nextReq++;
  return new Promise<void>((resolve, reject) => {
    pendingPersists.set(reqId, { resolve, reject });
    post({ type: 'persist', reqId, puts, dels });
  });
}

function need(): State {
  if (!state) throw new ParleyError('USAGE', 'the enclave is not initialised');
  return state;
}

/** Runs one engine operation and commits its writes as one batch; a failed commit poisons the enclave. */
async function commit<T>(s: State, fn: () => Promise<T>): Promise<T> {
  let fnDone = false;
  try {
    return await s.store.transaction(async () => {
      const r = await fn();
      fnDone = true;
      return r;
    });
  } catch (e) {
    if (fnDone) poison(`a sealed-state commit failed (${toWireError(e).code})`);
    throw e;
  }
}

/** `sent` calls waiting for the next shared commit. */
let sentQueue: { to: string; id: string; resolve: () => void; reject: (e: unknown) => void }[] = [];

/**
 * Drops a reply the relay has stored from the outbox. The `sent` calls that arrive in one turn
 * (the relay acks replies to many customers at once) share one commit instead of one each: each
 * call still resolves only once its own removal is durable, exactly as before, and a removal is
 * pure cleanup (if a crash loses it, the reply is sent again and the relay and the customer's
 * dedupe drop the copy), so batching them changes no crash semantics.
 */
function markSent(s: State, to: string, id: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    sentQueue.push({ to, id, resolve, reject });
    if (sentQueue.length > 1) return;
    setImmediate(() => {
      const batch = sentQueue;
      sentQueue = [];
      // One failing removal (the engine's operations are transactional: it wrote nothing) fails
      // only its own call; the others still commit.
      const failed = new Map<(typeof batch)[number], unknown>();
      commit(s, async () => {
        for (const e of batch) await s.engine.markSent(e.to, e.id).catch((err: unknown) => void failed.set(e, err));
      }).then(
        () => batch.forEach((e) => (failed.has(e) ? e.reject(failed.get(e)) : e.resolve())),
        (err: unknown) => batch.forEach((b) => b.reject(err)),
      );
    });
  });
}

/** A reply the host configured (`failureReply`, `handoffUnclaimedReply`), as the handler would send it. */
function configuredReply(encoded: { type: 'text' | 'json' | 'binary'; body: Uint8Array } | undefined): OutgoingContent | undefined {
  if (!encoded) return undefined;
  const c = decodeContent(encoded.type, encoded.body);
  return c.type === 'text' ? c.text : c.type === 'json' ? c.json : c.binary;
}

function makeAttestation(s: State, now = Date.now()): BotAttestation {
  const base = { version: 1 as const, deviceId: s.engine.deviceId, measurement: s.measurement, issuedAt: now };
  return { ...base, signature: s.engine.signAttestation(attestationPayload(base)) };
}

function replyId(from: string, id: string, index: number): string {
  const digest = getCrypto().sha256(concatBytes(utf8('parley/v1/bot-reply'), new Uint8Array([0]), utf8(from), new Uint8Array([0]), utf8(id), new Uint8Array([index >> 8, index & 0xff])));
  return toHex(digest.subarray(0, 16));
}

/**
 * Bundles asked of the host (`needBundle`), per peer: when, and the replies waiting for it. The
 * host fetches the bundle from the relay and hands it in with `resend`.
 */
const bundleRequests = new Map<string, { at: number; waiters: (() => void)[] }>();

/** Asks the host for `peer`'s bundle, unless that was asked less than {@link BUNDLE_WAIT_MS} ago. */
function requestBundle(peer: string): void {
  const pending = bundleRequests.get(peer);
  if (pending && Date.now() - pending.at < BUNDLE_WAIT_MS) return;
  bundleRequests.set(peer, { at: Date.now(), waiters: pending?.waiters ?? [] });
  post({ type: 'needBundle', peer });
}

/** Resolves when `peer`'s bundle was handed in, or after {@link BUNDLE_WAIT_MS}. */
function bundleArrival(peer: string): Promise<void> {
  requestBundle(peer);
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, BUNDLE_WAIT_MS);
    bundleRequests.get(peer)!.waiters.push(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function bundleArrived(peer: string): void {
  const pending = bundleRequests.get(peer);
  bundleRequests.delete(peer);
  for (const w of pending?.waiters ?? []) w();
}

/**
 * A delivery from `p.from` failed with `error`. For a session reason (no session, a fork, a
 * rollback, an auth failure, an invalid prekey: the customer's state and ours disagree) the
 * enclave asks the customer for a fresh session: a signed reset request, sent like a reply. The
 * customer then resends what the bot has not receipted, under the same ids. Never in answer to
 * a reset request itself: two devices that each lost the other would otherwise ask each other
 * forever.
 */
async function askForReset(s: State, p: { from: string; id: string; envelope: Uint8Array }, error: unknown): Promise<void> {
  const reason = resetReasonOf(error);
  if (!reason || isSessionReset(p.envelope)) return;
  try {
    const out = await commit(s, () => s.engine.requestReset(p.from, p.id, reason));
    if (!out) return; // bounded by the engine: asked this customer a moment ago
    post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope });
    post({ type: 'event', name: { type: 'sessionReset', peer: p.from, initiatedBy: 'self', reason } });
  } catch {
    // The delivery's own error is what the host reports; a failed commit already poisoned us.
  }
}

/** How often the enclave sends the reset requests the engine's bounds held back. */
const DEFERRED_RESET_POLL_MS = 5_000;

async function sendDeferredResets(s: State): Promise<void> {
  if (!s.engine.hasDeferredResets()) return; // no commit (and no disk write) when idle
  try {
    for (const { out, reason } of await commit(s, () => s.engine.deferredResets())) {
      post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope });
      post({ type: 'event', name: { type: 'sessionReset', peer: out.to, initiatedBy: 'self', reason } });
    }
  } catch {
    // A failed commit already poisoned the enclave; nothing else to report here.
  }
}

/** Sends the delivery receipt `peer` is owed, if any, through the sealed outbox like a reply. */
async function sendReceipt(s: State, peer: string): Promise<void> {
  const out = await commit(s, () => s.engine.receipt(peer));
  if (out) post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope });
}

/** Encrypts one reply to `msg`'s sender under reply index `index` (deterministic id) and hands it to the host. */
async function sendReply(s: State, msg: ReceivedMessage, index: number, content: OutgoingContent, also?: () => Promise<void>): Promise<void> {
  const messageId = replyId(msg.from, msg.id, index);
  // The customer asked for a session reset: the reply needs its bundle, which the host fetches.
  if (s.engine.needsBundle(msg.from)) await bundleArrival(msg.from);
  const out = await commit(s, async () => {
    await also?.();
    return s.engine.send(msg.from, content, messageId);
  });
  if (out) post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope });
}

/**
 * Sends reply `index` to `msg`: to its sender, or in a conversation to every member but the bot
 * (`conversations.ts`). `also` is committed with it (the failure count, for the failure reply).
 */
async function replyTo(s: State, msg: HandlerInput, index: number, content: OutgoingContent, also?: () => Promise<void>): Promise<void> {
  if (inConversation(msg)) return s.conversations.reply(msg, index, replyId(msg.from, msg.id, index), content, also);
  return sendReply(s, msg, index, content, also);
}

/** How often `msg` failed so far, and whether the failure reply went out (sealed, so a restart continues the count). */
async function failuresOf(s: State, key: string): Promise<{ failures: number; replied: boolean }> {
  const raw = await s.store.get(key);
  if (!raw) return { failures: 0, replied: false };
  const v = JSON.parse(textDecoder.decode(raw)) as { failures?: unknown; replied?: unknown };
  return { failures: typeof v.failures === 'number' ? v.failures : 0, replied: v.replied === true };
}

/**
 * The run failed: counts it (sealed) and, at the first failure, sends the failure reply in the
 * same commit (its id is fixed per message, so no re-run or restart sends a second one); then
 * reports it to the host (typed facts; the handler's message only in dev mode).
 */
async function recordFailure(s: State, msg: HandlerInput, key: string, before: { failures: number; replied: boolean }, outcome: Extract<RunOutcome, { status: 'failed' }>): Promise<{ failures: number; replied: boolean }> {
  const failures = before.failures + 1;
  const save = (replied: boolean) => () => s.store.setMany([[key, textEncoder.encode(JSON.stringify({ failures, replied }))]]);
  let replied = before.replied;
  let saved = false;
  if (!replied && s.failureReply !== undefined) {
    try {
      await replyTo(s, msg, FAILURE_REPLY_INDEX, s.failureReply, save(true));
      replied = saved = true;
    } catch {
      // No session, an untrusted or blocked customer: the count is still recorded below.
    }
  }
  if (!saved) await commit(s, save(replied));
  post({
    type: 'event',
    name: {
      type: 'handlerFailed',
      kind: outcome.kind,
      peer: msg.from,
      messageId: msg.id,
      failures,
      quarantined: failures >= s.maxFailures,
      failureReplySent: replied,
      ...(outcome.dev ? { dev: outcome.dev } : {}),
    },
    error: toWireError(outcome.error),
  });
  return { failures, replied };
}

/**
 * Runs the handler for one message, in order within its conversation. A run that fails is run
 * again (flagged `redelivered`) until it failed `maxFailures` times; then the message is
 * quarantined: consumed without another run. An interrupted run (its worker was ended because
 * another run was stuck) is run again without counting. The message is consumed, and the run's
 * `ctx.state` changes committed, in one commit once a run returns.
 */
function runHandler(s: State, msg: HandlerInput, redelivered: boolean): void {
  const conversation = inConversation(msg) ? msg.conversation : undefined;
  // In order within a conversation (of several members, or one-to-one with the sender).
  s.queue.push(conversation !== undefined ? `conv/${conversation}` : msg.from, async () => {
    const failKey = `${FAILURES_PREFIX}${msg.from}/${msg.id}`;
    const stateKey = conversation !== undefined ? `${STATE_PREFIX}conv/${conversation}` : `${STATE_PREFIX}${msg.from}`;
    let again = redelivered;
    let record = await failuresOf(s, failKey);
    let outcome: RunOutcome | undefined;
    /** Form values whose consent no longer holds (README "Consent and forms in a handler"): consumed without a run. */
    let refused: ParleyError | undefined;
    while (record.failures < s.maxFailures) {
      // Checked again before every run (a crash or failure re-run too): a withdrawal that arrived since means no run.
      refused = inConversation(msg) ? s.conversations.formRefusal(msg) : undefined;
      if (refused) break;
      let replies = 0;
      // Who is staff is read at each run: a credential expired or revoked since is not shown.
      const staff = staffOf(s, msg.from);
      const snapshot = conversation !== undefined ? s.conversations.snapshot(conversation) : undefined;
      const view: BotMessage = { ...withoutConversation(msg), redelivered: again, ...(staff ? { staff } : {}), ...(snapshot ? { conversation: snapshot } : {}) };
      // The handler worker asks for each reply (or handoff) in turn; the run settles once the
      // handler returned and its replies are committed (then the message is consumed and
      // receipted, as before). Replies and handoffs share the index of the deterministic ids.
      const nextIndex = (): number => {
        if (replies >= 1000) throw new ParleyError('USAGE', 'at most 1000 replies per message');
        return replies++;
      };
      const actions: RunActions = {
        reply: async (content) => replyTo(s, msg, nextIndex(), content),
        handoff: async (queue, reason) => {
          if (!inConversation(msg)) throw new ParleyError('USAGE', 'ctx.handoff works only for a message that came in a conversation (message.conversation)');
          const index = nextIndex();
          await s.conversations.handoff(msg, replyId(msg.from, msg.id, index), queue, reason);
        },
        members: () => (conversation !== undefined ? s.conversations.members(conversation) : []),
        consents: () => (conversation !== undefined ? s.conversations.consents(conversation) : []),
        requestConsent: async (request) => {
          if (!inConversation(msg)) throw new ParleyError('USAGE', 'ctx.requestConsent works only for a message that came in a conversation (message.conversation)');
          const index = nextIndex();
          const id = consentRequestId(msg.from, msg.id, index);
          await s.conversations.requestConsent(msg, index, replyId(msg.from, msg.id, index), id, request);
          return id;
        },
        requestForm: async (request) => {
          if (!inConversation(msg)) throw new ParleyError('USAGE', 'ctx.requestForm works only for a message that came in a conversation (message.conversation)');
          const index = nextIndex();
          const id = consentRequestId(msg.from, msg.id, index);
          await s.conversations.requestForm(msg, index, replyId(msg.from, msg.id, index), id, request);
          return id;
        },
      };
      const stored = await s.store.get(stateKey);
      outcome = await s.handler.run(view, s.engine.deviceId, stored ? textDecoder.decode(stored) : '', actions);
      again = true;
      if (outcome.status === 'done') break;
      if (outcome.status === 'failed') record = await recordFailure(s, msg, failKey, record, outcome);
    }
    try {
      const state = outcome?.status === 'done' ? outcome.state : undefined;
      // The frames prepared for this message's replies in a conversation are done with too.
      const prepared = conversation !== undefined ? await s.conversations.preparedKeys(msg.from, msg.id) : [];
      await commit(s, async () => {
        await s.engine.consume(msg.from, msg.id);
        if (prepared.length > 0) await s.store.delMany(prepared);
        if (record.failures > 0) await s.store.delMany([failKey]);
        if (state === '') {
          if (await s.store.get(stateKey)) await s.store.delMany([stateKey]);
        } else if (state !== undefined) await s.store.setMany([[stateKey, textEncoder.encode(state)]]);
      });
      await sendReceipt(s, msg.from);
      // Reported like a commit failure after a run: a typed fact, no value.
      if (refused) post({ type: 'event', name: { type: 'handlerFailed' }, error: toWireError(refused) });
    } catch (e) {
      post({ type: 'event', name: { type: 'handlerFailed' }, error: toWireError(e) });
    }
  });
}

/** What the conversation rules know of a staff sender (its verified credential, if still valid). */
function senderStaff(s: State, peer: string): { roles: readonly string[]; displayName: string } | undefined {
  const staff = staffOf(s, peer);
  return staff && { roles: staff.roles, displayName: staff.displayName };
}

/** `message.staff` (README "Handler context"): the sender's verified staff credential, if any and still valid. */
function staffOf(s: State, peer: string): BotMessage['staff'] {
  const info = s.engine.peerStaff(peer);
  if (!info || Date.now() >= info.expiresAt) return undefined;
  return { personId: info.personId, displayName: info.displayName, roles: [...info.roles], expiresAt: info.expiresAt };
}

type Impl = { [M in MethodName]: (p: Params<M>) => Promise<Result<M>> };

const impl: Impl = {
  async init(p) {
    if (state || initialising) throw new ParleyError('USAGE', 'the enclave is already initialised');
    initialising = true;
    try {
      await initCrypto();
      // The handler and every file its imports reach are measured with the enclave's code. The
      // handler worker (its own isolate, no keys) loads exactly these bytes, while the enclave
      // unseals its state below.
      const handlerFiles = handlerCodeFiles(p.handlerUrl);
      const files: [string, Uint8Array][] = enclaveCodeFiles().map(([l, f]) => [l, new Uint8Array(readFileSync(f))]);
      const handlerAt = files.length;
      for (const f of handlerFiles) files.push([f.label, f.bytes]);
      // Dev mode lets handler errors (which may quote plaintext) cross to the host: a bot running
      // it attests to another measurement, so clients pinning the production one refuse it.
      if (p.dev) files.push([DEV_MODE_LABEL, textEncoder.encode('handler errors cross the enclave boundary')]);
      // The pinned org key decides whose staff credentials the handler is told about: measured,
      // so a host cannot swap in a key of its own without changing what the bot attests to.
      if (p.orgKey) files.push([ORG_KEY_MEASUREMENT_LABEL, p.orgKey]);
      // The egress policy is measured with the code (appended last, when not empty) and is the
      // one ctx.fetch enforces: the policy a client verifies is the policy that runs.
      const measured = measure(files, p.egress ?? []);
      const { measurement } = measured;
      const digests = measured.files.slice(handlerAt, handlerAt + handlerFiles.length);
      const handlerStart = HandlerWorker.start({
        handlerUrl: p.handlerUrl,
        measured: handlerFiles.map((f, i) => [f.path, digests[i]!.sha256] as const),
        egress: measured.egress,
        safetyNumber: (peer) => need().engine.safetyNumber(peer),
        onExit: (reason) => poison(`the handler worker stopped (${reason})`),
        ...(p.handlerTimeoutMs !== undefined ? { timeoutMs: p.handlerTimeoutMs } : {}),
        ...(p.dev ? { dev: true } : {}),
        onRestart: () => console.warn('a handler run was stuck past its time limit (a busy loop?): the handler worker was restarted; its other runs run again'),
      });
      handlerStart.catch(() => undefined); // awaited below, once the state is unsealed
      let unsealed: { store: SealedKeyValueStore; engine: EnclaveEngine; tap: TestingKeyTap | undefined };
      try {
        // Sealed state is bound to the measurement and checked against the rollback anchor
        // (sealed-store.ts); a new secret is never made for existing state.
        const secret = await loadSealingSecret(p.sealing, p.records.length === 0);
        let store: SealedKeyValueStore;
        let tap: TestingKeyTap | undefined;
        try {
          const anchor = p.rollbackAnchor ? await RollbackAnchor.open(p.rollbackAnchor, deriveAnchorKey(secret)) : undefined;
          store = SealedKeyValueStore.open(secret, p.records, persist, { measurement, ...(p.migrateFrom ? { migrateFrom: p.migrateFrom } : {}), ...(anchor ? { anchor } : {}) });
          tap = p.unsafeTestingExposeKeys ? new TestingKeyTap(p.unsafeTestingExposeKeys, [secret, store.unsafeTestingStateKey()]) : undefined;
        } finally {
          secret.fill(0);
        }
        tap?.attach(store);
        const orgKey = p.orgKey;
        unsealed = { store, engine: await store.transaction(() => openEngine(store, orgKey ? { orgKey } : {})), tap };
        await store.finishOpen();
      } catch (e) {
        void handlerStart.then((h) => h.terminate(), () => undefined);
        throw e;
      }
      const { store, engine, tap } = unsealed;
      const handler = await handlerStart;
      // Verified against the pinned (measured) org key: a host cannot make the enclave seal to a key of its own.
      const archiver = BotArchiver.open(store, engine.archive, p.archiveDisclosure, p.orgKey);
      const conversations = await BotConversations.open({
        store,
        engine,
        commit: (fn) => commit(need(), fn),
        send: (out) => post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope }),
        bundleArrival,
        onSendFailed: (f) => post({ type: 'event', name: { type: 'conversationSendFailed', ...f } }),
        poison,
        ...(archiver
          ? {
              archiver: {
                seal: async (m) => (archiver.active ? archiver.seal(m) : undefined),
                post: (out) => post({ type: 'archive', key: out.key, ref: out.ref, submission: out.submission, retry: false }),
              },
            }
          : {}),
      });
      const s: State = {
        store,
        engine,
        handler,
        measurement,
        queue: new HandlerQueue(MAX_CONCURRENT_HANDLERS),
        tap,
        maxFailures: p.maxHandlerFailures ?? DEFAULT_MAX_HANDLER_FAILURES,
        failureReply: configuredReply(p.failureReply),
        conversations,
        handoffUnclaimedReply: configuredReply(p.handoffUnclaimedReply),
        archiver,
      };
      state = s;
      // Archive submissions sealed before a crash but not yet appended go again, as retries (the
      // first try may have landed: the relay then answers with the entry it holds).
      for (const out of (await archiver?.pending()) ?? []) post({ type: 'archive', key: out.key, ref: out.ref, submission: out.submission, retry: true });
      // Replies committed before a crash but never handed to the host go out first, in commit
      // order, so a handler re-run below can never put a later reply ahead of them.
      for (const out of await engine.pendingOutbox()) post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope });
      // Receipts a crash left owed (their messages were handled) go out too.
      const unfinished: HandlerInput[] = [...(await engine.unconsumed()), ...(await conversations.unfinished())];
      const rerun = new Set(unfinished.map((m) => m.from));
      for (const peer of engine.peersOwedReceipts()) if (!rerun.has(peer)) await sendReceipt(s, peer);
      // Messages whose handler run a crash interrupted: run them again, flagged.
      for (const m of unfinished) runHandler(s, m, true);
      // Resends a crash interrupted (a customer's reset was applied, its bundle never came): ask again.
      for (const peer of await engine.pendingResends()) requestBundle(peer);
      // Reset requests the engine held back (inside its per-customer interval) go out once it passed.
      setInterval(() => void sendDeferredResets(s), DEFERRED_RESET_POLL_MS).unref();
      return {
        deviceId: engine.deviceId,
        identity: engine.publicIdentity,
        measurement,
        attestation: makeAttestation(s),
        redelivered: unfinished.length,
        sealing: { ...(store.opening.migratedFrom ? { migratedFrom: store.opening.migratedFrom } : {}), anchor: store.opening.anchor },
      };
    } finally {
      initialising = false;
    }
  },

  async relayAuth(p) {
    return need().engine.relayLoginAnswer({ serverNonce: p.serverNonce, origin: p.origin });
  },

  async prekeys(p) {
    const s = need();
    return commit(s, () => s.engine.prekeys(p.generate));
  },

  async prekeysPublished(p) {
    const s = need();
    await commit(s, () => s.engine.prekeysPublished(p.ids));
    return {};
  },

  async deliver(p) {
    const s = need();
    let r;
    let taken: TakenFrame | undefined;
    try {
      r = await commit(s, async () => {
        const d = await s.engine.receive(p);
        // A conversation frame is applied to the book in the same commit as its decryption.
        if (d.kind === 'frame') taken = await s.conversations.take(d.frame, senderStaff(s, p.from));
        return d;
      });
    } catch (e) {
      await askForReset(s, p, e);
      throw e;
    }
    if (r.kind === 'duplicate') return { status: { type: 'duplicate' } };
    if (r.kind === 'message') runHandler(s, r.message, false);
    if (taken) {
      for (const out of taken.sends ?? []) post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope });
      // The frame's message, or the held messages a member list released.
      for (const m of taken.runs) runHandler(s, m, false);
      // Applied or refused, and consumed already: nothing more for it; the receipt is owed.
      if (taken.consumed) await sendReceipt(s, p.from).catch(() => undefined);
      // A refused frame (not from the owner, not from a member, malformed) changed nothing: the
      // host acks it and logs the typed refusal.
      if (taken.refused) throw taken.refused;
    }
    if (r.kind === 'reset' && r.applied) {
      post({ type: 'event', name: { type: 'sessionReset', peer: p.from, initiatedBy: 'peer', reason: r.reason } });
      if (r.resend) requestBundle(p.from);
    }
    return { status: { type: 'accepted' } };
  },

  async resend(p) {
    const s = need();
    try {
      const { resent, failed } = await commit(s, () => s.engine.takeBundle(p.peer, p.bundle));
      for (const out of resent) post({ type: 'send', to: out.to, id: out.id, envelope: out.envelope });
      for (let i = 0; i < failed.length; i += MAX_GIVEN_UP_IDS) post({ type: 'event', name: { type: 'resendGaveUp', peer: p.peer, ids: failed.slice(i, i + MAX_GIVEN_UP_IDS) } });
    } finally {
      // Replies waiting for it go on (with a refused bundle they fail, instead of waiting it out).
      bundleArrived(p.peer);
    }
    // Receipts owed while there was no session.
    await sendReceipt(s, p.peer);
    return {};
  },

  async sent(p) {
    const s = need();
    await markSent(s, p.to, p.id);
    return {};
  },

  async archived(p) {
    const s = need();
    if (s.archiver) await commit(s, () => s.archiver!.appended(p.key));
    return {};
  },

  async attest() {
    return makeAttestation(need());
  },

  async handoffUnclaimed(p) {
    const s = need();
    return { sent: await s.conversations.unclaimed(p.ticketId, p.customer, s.handoffUnclaimedReply) };
  },

  async revocations(p) {
    const s = need();
    return commit(s, () => s.engine.setRevocationLists(p.lists));
  },

  async peerStatements(p) {
    const s = need();
    const staff = await commit(s, () => s.engine.setPeerCredential(p.peer, p.identity, p.certificate));
    const expiresAt = staff ? s.engine.peerStaff(p.peer)?.expiresAt : undefined;
    return { staff, ...(expiresAt !== undefined ? { expiresAt } : {}) };
  },

  async unsafeTestingCrash(p) {
    const s = need();
    if (!s.tap) throw new ParleyError('FORBIDDEN', 'testing hooks are off');
    if (p.how.type === 'exit') process.exit(71);
    if (p.how.type === 'oom') {
      const hog: unknown[] = [];
      for (let i = 0; i < 1e9; i++) hog.push({ i, s: 'x'.repeat(1024) + i });
    }
    // A throw inside a crypto operation: the backend rejects a bad key size.
    getCrypto().x25519(new Uint8Array(1), new Uint8Array(1));
    return {};
  },
};

async function onCall(callId: number, method: string, rawParams: unknown): Promise<void> {
  try {
    if (!isMethod(method)) throw new ParleyError('MALFORMED_MESSAGE', 'unknown method');
    const params = parseParams(method, rawParams);
    const value = await (impl[method] as (p: unknown) => Promise<unknown>)(params);
    post({ type: 'result', callId, ok: true, value });
  } catch (e) {
    post({ type: 'result', callId, ok: false, value: undefined, error: toWireError(e) });
  }
}

port.on('message', (raw: unknown) => {
  let msg;
  try {
    msg = parseHostMessage(raw);
  } catch (e) {
    const id = typeof raw === 'object' && raw !== null && Object.hasOwn(raw, 'callId') ? (raw as { callId: unknown }).callId : undefined;
    if (typeof id === 'number' && Number.isSafeInteger(id) && id > 0) post({ type: 'result', callId: id, ok: false, value: undefined, error: toWireError(e) });
    else post({ type: 'rejected', error: toWireError(e) });
    return;
  }
  if (msg.type === 'call') {
    void onCall(msg.callId, msg.method, msg.params);
    return;
  }
  const pending = pendingPersists.get(msg.reqId);
  if (!pending) return;
  pendingPersists.delete(msg.reqId);
  if (msg.ok) pending.resolve();
  else pending.reject(ParleyError.fromJSON(msg.error));
});

post({ type: 'event', name: { type: 'ready' } });
