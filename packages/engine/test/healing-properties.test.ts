/**
 * Property test of self-healing sessions (issue 9 "Recovery", docs/threats.md C3, C25): random
 * schedules that include state rollbacks, clones and lost session state still deliver every
 * message exactly once, or report it.
 *
 * The world: two devices (Alice, Bob), each an engine on a MemoryStore driven by a harness that
 * behaves like `ParleyClient`'s healing loop (client.ts `#onDelivery`, `#requestReset`,
 * `#resendAfterReset`, `send`, `#encryptReceipts`, `#drain`, `#publishPrekeys`):
 * - every delivery is received with `{ receipt: true }`; an error with a `resetReasonOf` reason
 *   makes the receiver call `requestSessionReset` and send the request (the engine's limiter may
 *   say not now: nothing is sent then, as in the client); a `sessionReset` result with `applied`
 *   makes the device fetch a bundle of the peer (only when `unconfirmedCount > 0` and
 *   `needsBundle`), call `resendUnconfirmed` and send what it returns; its `failed` ids are
 *   reported to the sender's app;
 * - the app consumes the inbox after every delivery (receipts are consumed unseen);
 * - sending a text first encrypts the receipts owed to that peer; a receipt that cannot be
 *   encrypted is dropped unless its error is one the client keeps receipts for;
 * - the outbox is sent right after every operation and `markDelivered` once the relay stored it;
 * - a device that (re)starts logs in: it publishes prekeys (the client's `#publishPrekeys` with a
 *   small target), sends owed receipts and its outbox.
 * The relay keeps one queue per recipient, stores a message idempotently on (from, to, id) while
 * it is pending (as `MemoryRelayStore.enqueue`), hands out bundles from the uploaded one-time
 * prekeys (ignoring OPK ids it has seen before, as the relay store does) and asks the owner to
 * publish when none are left. A restored device therefore meets OPKs on the relay that its
 * rolled-back account never had, as it would in production.
 *
 * Commands (random, at most MAX_COMMANDS): send a text A→B or B→A; deliver the next queued
 * envelope, or one of the first REORDER_WINDOW (bounded reordering); send owed receipts;
 * snapshot a device (store bytes + its app's view); restore a device from one of its earlier
 * snapshots (its engine is replaced by one opened on a byte copy; the app's view rolls back with
 * it, exactly as a restored phone's message history would); clone a device, let the clone send
 * one text, discard the clone; wipe a device's sessions (every `session/` record, the peer
 * records' `sessions` and `archived` lists; everything else stays); advance the shared fake clock
 * (engine option `now`) by small steps, about the reset intervals, or up to 70 s; the app polls
 * `messageGaps(GAP_TIMEOUT_MS)` and marks them reported whenever the clock moves. Every command
 * also moves the clock by 1 ms.
 *
 * Settle (bounded, SETTLE_ROUNDS): each round advances the clock past RESET_REQUEST_INTERVAL_MS
 * and RESET_APPLY_INTERVAL_MS; in the first round each device sends one closing text (the
 * conversation goes on: gap detection needs a later message); then receipts and deliveries run
 * until the relay is empty, and gaps are polled. It stops after a round that moved nothing.
 *
 * Rules checked:
 * 1. No duplicate: no app (the current device's app; on restore its view rolls back with the
 *    snapshot) is shown a message id twice.
 * 2. Every message accounted for: each text sent by a live device (not a discarded clone; the
 *    closing texts included) is, after settle, either
 *    a. seen (once) by the peer's current app; or
 *    b. reported failed: listed in a `failed` of the sender's `resendUnconfirmed` (given up after
 *       MAX_RESENDS); or
 *    c. covered by a gap: its sequence number (read from its `unconfirmed/` payload record right
 *       after `encrypt`) was reported by the receiver's current app via `messageGaps` and
 *       `markGapsReported` (a receipted message that a restored receiver no longer has: the
 *       sender dropped it on the receipt). A gap names a sequence number, not an id: after a
 *       sender rollback two messages may share one; the gap then covers both; or
 *    d. rolled back: the sender's current state never sent it (it was sent after the snapshot
 *       the sender was restored from; the restored sender cannot resend what it forgot); or
 *    e. (on by default; PARLEY_HEALING_ACCEPT_MASKING=0 turns it off: limitation C) masked: the
 *       receiver's current app saw another text of the same sender with the same seq (a
 *       discarded clone's, or one of a rolled-back sender state), which hides the gap of c, and
 *       no delivery of the message was refused (a refusal is the engine's to heal) unless the
 *       healing had shown it to the receiver's app before a restore of the receiver erased it.
 * 3. The relay is empty after settle (healing terminated within the bound).
 * 4. Only expected errors (ALLOWED_ERRORS): the session reasons (RESET_REASONS, which ask for a
 *    reset) and DUPLICATE_MESSAGE, which the engine answers where a rollback makes ratchet state
 *    repeat: a restored or cloned sender's counter on a chain the receiver still holds (beyond
 *    the current chain's 32 recent headers, or on an older chain, docs/errors.md), or a prekey
 *    message whose base key the receiver's account remembers after its sessions were lost. The
 *    code is allowed; a message refused with it is not excused by that (rule 2 still applies).
 *    MESSAGE_KEY_EXPIRED is not expected: the clock stays far below the skipped-key TTL
 *    (30 days) and no schedule comes near the skipped-key caps. Anything else (STORAGE_INTEGRITY,
 *    USAGE, INTERNAL, ...) fails the rules, as does any error thrown by an operation other than
 *    `receive` (it fails the run).
 *
 * Self-check: the second test runs the same schedules with the harness's `requestSessionReset`
 * switched off (healing disabled) and asserts that a good share of them break the rules, so the
 * bookkeeping cannot quietly accept lost messages.
 *
 * Findings (minimal schedules below, run through the same harness). A and B are fixed; C is a
 * documented limitation (packages/protocol/README.md, "Self-healing sessions"):
 * A. (Fixed: `resetReasonOf` treats a thrown DUPLICATE_MESSAGE as SENDER_STATE_ROLLBACK, since
 *    `receive` never throws it for a relay id it has seen.) A rolled-back sender's message whose counter lies past the end of an older receiving chain
 *    the receiver still holds (it keeps a skipped key there) is refused as DUPLICATE_MESSAGE:
 *    the ratchet (`staleCounterError` for older chains) treats every keyless counter there as
 *    consumed, though that counter never existed (the chain's length is known from the next
 *    chain's PN). DUPLICATE_MESSAGE asks for no reset, so the message stays unconfirmed at the
 *    sender for good, and its seq (a rolled-back seq, already received) makes no gap.
 * B. (Fixed: the engine remembers a held-back request and `requestDeferredResets`, which the
 *    client calls every few seconds, sends it once the interval passed.) A failure within
 *    RESET_REQUEST_INTERVAL_MS of the last request was dropped
 *    (`requestSessionReset` resolves undefined and nobody remembers it). When nothing fails
 *    after the interval (the peer sends nothing more, or its later messages open), the messages
 *    that failed stay unconfirmed and are never resent nor reported. In the schedule the resends
 *    fail again at once (INVALID_PREKEY, within the interval) because the relay still hands out
 *    one-time prekeys that Bob published after the snapshot he was restored from.
 * C. (Limitation, accepted by rule 2e.) Gap detection relies on a sender's seq numbers being unique; a clone, or a sender state
 *    that was rolled back, reuses them. A receiver restored from a snapshot that had received a
 *    message with that seq from the other copy reports no gap for the message it lost, though the
 *    sender may still hold it unconfirmed (the schedules: it does).
 *
 * Environment: PARLEY_HEALING_SEED (integer seed, default fixed), PARLEY_HEALING_RUNS (default
 * 60), PARLEY_HEALING_TRACE=1 (log every step), PARLEY_HEALING_REPLAY='<schedule JSON>' (run
 * one schedule, as printed in a failure, instead of the random ones), PARLEY_HEALING_ACCEPT_MASKING=0
 * (rule 2e off).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isParleyError, RESET_REASONS, type PrekeyUpload } from '@parley/protocol';
import {
  ConversationEngine,
  MemoryStore,
  RESET_APPLY_INTERVAL_MS,
  RESET_REQUEST_INTERVAL_MS,
  decodePayload,
  resetReasonOf,
  type FetchedBundle,
  type OutgoingEnvelope,
  type ReceiveResult,
} from '../src/index.js';
import { unsafeTestingRaw } from '../src/testing.js';
import { deliver, device, mid, setupCrypto, takeBundle, text } from './helpers/engines.js';

before(setupCrypto);

const SEED = process.env.PARLEY_HEALING_SEED ? Number(process.env.PARLEY_HEALING_SEED) : 0x9e41;
const RUNS = process.env.PARLEY_HEALING_RUNS ? Number(process.env.PARLEY_HEALING_RUNS) : 60;
const TRACE = process.env.PARLEY_HEALING_TRACE === '1';
/** A schedule to run alone (JSON, as printed in a counterexample), e.g. with PARLEY_HEALING_TRACE=1. */
const REPLAY = process.env.PARLEY_HEALING_REPLAY ? (JSON.parse(process.env.PARLEY_HEALING_REPLAY) as Command[]) : undefined;
const MAX_COMMANDS = 40;
const REORDER_WINDOW = 6;
const SETTLE_ROUNDS = 8;
/** The app reports a sequence number missing for this long (`messageGaps(timeoutMs)`). */
const GAP_TIMEOUT_MS = 5_000;
/** The client's `prekeyTarget`, small so that the relay runs out and devices refill. */
const PREKEY_TARGET = 4;
const SNAPSHOTS_KEPT = 6;
/** Rule 2e (on: the known limitation C in the header; PARLEY_HEALING_ACCEPT_MASKING=0 turns it off). */
const ACCEPT_SEQ_MASKING = process.env.PARLEY_HEALING_ACCEPT_MASKING !== '0';
const T0 = Date.UTC(2030, 0, 1);

/** Codes a delivery may fail with in these schedules (see rule 4). */
const ALLOWED_ERRORS: ReadonlySet<string> = new Set([...RESET_REASONS, 'DUPLICATE_MESSAGE']);
/** Codes the client keeps owed receipts for (client.ts KEEP_RECEIPT_ON_ERROR). */
const KEEP_RECEIPT_ON_ERROR: ReadonlySet<string> = new Set(['STORAGE_INTEGRITY', 'STORAGE_QUOTA', 'INTERNAL', 'SESSION_NOT_FOUND']);

type Side = 'alice' | 'bob';
const SIDES: readonly Side[] = ['alice', 'bob'];
const other = (s: Side): Side => (s === 'alice' ? 'bob' : 'alice');

type Command =
  | { kind: 'send'; from: Side }
  | { kind: 'deliver'; to: Side; pick: number }
  | { kind: 'receipts'; side: Side }
  | { kind: 'snapshot'; side: Side }
  | { kind: 'restore'; side: Side; pick: number }
  | { kind: 'clone'; side: Side }
  | { kind: 'wipe'; side: Side }
  | { kind: 'advance'; ms: number };

const side = fc.constantFrom<Side>('alice', 'bob');
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('send' as const), from: side }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: side, pick: fc.constant(0) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: side, pick: fc.nat(REORDER_WINDOW - 1) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('receipts' as const), side }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('snapshot' as const), side }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('restore' as const), side, pick: fc.nat(SNAPSHOTS_KEPT - 1) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('clone' as const), side }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('wipe' as const), side }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: RESET_APPLY_INTERVAL_MS - 1_000, max: RESET_APPLY_INTERVAL_MS + 2_000 }), fc.integer({ min: 1, max: 70_000 })),
    }),
  },
);

function describeCommand(c: Command): string {
  switch (c.kind) {
    case 'send':
      return `send ${c.from}→${other(c.from)}`;
    case 'deliver':
      return `deliver to ${c.to} #${c.pick}`;
    case 'receipts':
    case 'snapshot':
    case 'clone':
    case 'wipe':
      return `${c.kind} ${c.side}`;
    case 'restore':
      return `restore ${c.side} from snapshot #${c.pick}`;
    case 'advance':
      return `advance ${c.ms} ms`;
  }
}

/** What a device's app has been shown: rolled back with the device on restore. */
interface AppView {
  /** Text ids shown to the user. */
  readonly seen: Set<string>;
  /** Sequence numbers of the peer reported missing (`messageGaps`). */
  readonly gaps: Set<number>;
}

const copyApp = (a: AppView): AppView => ({ seen: new Set(a.seen), gaps: new Set(a.gaps) });

interface Snapshot {
  readonly raw: Map<string, Uint8Array>;
  readonly app: AppView;
  /** Ids of the texts the state sent (they are in its store: unconfirmed, seq). */
  readonly sent: Set<string>;
}

interface Device {
  readonly side: Side;
  engine: ConversationEngine;
  store: MemoryStore;
  app: AppView;
  sent: Set<string>;
  readonly snapshots: Snapshot[];
}

interface SentText {
  readonly id: string;
  readonly from: Side;
  readonly seq: number;
  readonly clone: boolean;
}

interface Queued {
  readonly from: Side;
  readonly id: string;
  readonly envelope: Uint8Array;
}

interface RelayPrekeys {
  upload?: PrekeyUpload;
  readonly available: { id: number; publicKey: Uint8Array }[];
  readonly seen: Set<number>;
}

/** Totals over every run, for the report. */
const totals = {
  runs: 0,
  commands: 0,
  texts: 0,
  cloneTexts: 0,
  deliveries: 0,
  resetRequests: 0,
  resetsApplied: 0,
  resetsNotApplied: 0,
  resent: 0,
  failedReported: 0,
  snapshots: 0,
  restores: 0,
  clones: 0,
  wipes: 0,
  receiptsDropped: 0,
  seenAtEnd: 0,
  excusedFailed: 0,
  excusedGap: 0,
  excusedRollback: 0,
  excusedMasked: 0,
  settleRounds: 0,
  errors: {} as Record<string, number>,
};

function rawCopy(store: MemoryStore): Map<string, Uint8Array> {
  return new Map([...unsafeTestingRaw(store)].map(([k, v]) => [k, v.slice()] as [string, Uint8Array]));
}

let worldCounter = 0;

class World {
  readonly healing: boolean;
  clock = T0;
  readonly devices = {} as Record<Side, Device>;
  readonly queues: Record<Side, Queued[]> = { alice: [], bob: [] };
  readonly prekeys: Record<Side, RelayPrekeys> = { alice: { available: [], seen: new Set() }, bob: { available: [], seen: new Set() } };
  readonly texts = new Map<string, SentText>();
  /** Ids reported failed to the sender's app (`resendUnconfirmed`'s `failed`). */
  readonly failed = new Set<string>();
  readonly violations: string[] = [];
  /** Message id (resends folded onto their original) → the error codes its deliveries met. */
  readonly errorsOf = new Map<string, string[]>();
  /** Every text any app state of either side was ever shown (app views roll back on restore; this does not). */
  readonly everShown = new Set<string>();
  readonly log: string[] = [];
  readonly tag = `w${++worldCounter}`;
  #next = 0;

  constructor(healing: boolean) {
    this.healing = healing;
  }

  trace(line: string): void {
    this.log.push(line);
    if (TRACE) console.log(`[${this.tag} t+${this.clock - T0}] ${line}`);
  }

  id(prefix: string): string {
    return `${prefix}${this.tag}-${++this.#next}`;
  }

  deviceId(s: Side): string {
    return this.devices[s].engine.deviceId;
  }

  async open(store: MemoryStore): Promise<ConversationEngine> {
    return ConversationEngine.open({ store, now: () => this.clock });
  }

  async init(): Promise<void> {
    for (const s of SIDES) {
      const store = new MemoryStore();
      const engine = await this.open(store);
      this.devices[s] = { side: s, engine, store, app: { seen: new Set(), gaps: new Set() }, sent: new Set(), snapshots: [] };
      await this.publish(s);
    }
  }

  // ------------------------------------------------------------------ relay

  /** The client's `#publishPrekeys` against the relay's prekey store (ids seen before are ignored). */
  async publish(s: Side): Promise<void> {
    const engine = this.devices[s].engine;
    const upload1 = await engine.prekeyUpload(0);
    let count = this.relayUpload(s, upload1);
    await engine.markUploaded(upload1.oneTimePrekeys.map((k) => k.id));
    if (count < PREKEY_TARGET / 2) {
      const upload2 = await engine.prekeyUpload(Math.min(100, PREKEY_TARGET - count));
      count = this.relayUpload(s, upload2);
      await engine.markUploaded(upload2.oneTimePrekeys.map((k) => k.id));
    }
  }

  relayUpload(s: Side, upload: PrekeyUpload): number {
    const entry = this.prekeys[s];
    entry.upload = upload;
    for (const opk of upload.oneTimePrekeys) {
      if (entry.seen.has(opk.id)) continue;
      entry.seen.add(opk.id);
      entry.available.push({ id: opk.id, publicKey: opk.publicKey.slice() });
    }
    return entry.available.length;
  }

  /** The relay's `fetchBundle`: one OPK, the owner refilling when none is left. */
  async takeBundle(s: Side): Promise<FetchedBundle> {
    const entry = this.prekeys[s];
    if (entry.available.length === 0) await this.publish(s);
    const upload = entry.upload!;
    const opk = entry.available.shift();
    this.trace(`relay hands out a bundle of ${s} with ${opk ? `OPK ${opk.id}` : 'no OPK'}`);
    return opk ? { identity: upload.identity, signedPrekey: upload.signedPrekey, oneTimePrekey: opk } : { identity: upload.identity, signedPrekey: upload.signedPrekey };
  }

  enqueue(from: Side, out: OutgoingEnvelope): void {
    const to = out.to === this.deviceId('alice') ? 'alice' : 'bob';
    assert.equal(to, other(from), 'envelopes go to the peer');
    if (this.queues[to].some((q) => q.from === from && q.id === out.id)) {
      this.trace(`relay: ${out.id} from ${from} is a retry of a pending message; stored once`);
      return;
    }
    this.queues[to].push({ from, id: out.id, envelope: out.envelope });
  }

  /** Sends the outbox (client `#flushOutbox`): the relay stores each, then `markDelivered`. */
  async flush(engine: ConversationEngine, from: Side): Promise<void> {
    for (const e of engine.pendingOutbox()) {
      this.enqueue(from, e);
      await engine.markDelivered(e.to, e.id);
    }
  }

  // ------------------------------------------------------------------ the client's loop

  /** One relay delivery, handled like `ParleyClient#onDelivery`. */
  async deliver(to: Side, index: number): Promise<void> {
    const q = this.queues[to].splice(index, 1)[0]!;
    const dev = this.devices[to];
    const peer = other(to);
    const peerId = this.deviceId(peer);
    totals.deliveries++;
    let r: ReceiveResult;
    try {
      r = await dev.engine.receive({ from: peerId, id: q.id, envelope: q.envelope }, { receipt: true });
    } catch (e) {
      if (!isParleyError(e)) throw e;
      totals.errors[e.code] = (totals.errors[e.code] ?? 0) + 1;
      const inner = q.id.replace(/-r\d$/, '');
      this.errorsOf.set(inner, [...(this.errorsOf.get(inner) ?? []), e.code]);
      this.trace(`${to} receive ${q.id}: ${e.code} (${e.message})`);
      if (!ALLOWED_ERRORS.has(e.code)) this.violations.push(`unexpected error ${e.code} at ${to} receiving ${q.id}: ${e.message}`);
      const reason = resetReasonOf(e);
      if (reason && this.healing) {
        const out = await dev.engine.requestSessionReset(peerId, { failedId: q.id, reason });
        if (out) {
          totals.resetRequests++;
          this.trace(`${to} requests a reset (${reason}): ${out.id}`);
          await this.flush(dev.engine, to);
        } else this.trace(`${to} reset request not allowed now`);
      }
      return;
    }
    if (r.kind === 'sessionReset') {
      this.trace(`${to} got reset request ${q.id}: applied=${r.applied} unconfirmed=${r.unconfirmed}`);
      if (!r.applied) {
        totals.resetsNotApplied++;
        return;
      }
      totals.resetsApplied++;
      const bundle = dev.engine.unconfirmedCount(peerId) > 0 && dev.engine.needsBundle(peerId) ? await this.takeBundle(peer) : undefined;
      const { resent, failed } = await dev.engine.resendUnconfirmed(peerId, bundle);
      totals.resent += resent.length;
      for (const id of failed) this.failed.add(id);
      totals.failedReported += failed.length;
      this.trace(`${to} resent [${resent.map((o) => o.id).join(' ')}] failed [${failed.join(' ')}]`);
      await this.flush(dev.engine, to);
      return;
    }
    this.trace(`${to} receive ${q.id}: ${r.kind}${r.kind === 'message' ? ` ${r.type} ${r.id} seq ${r.seq}` : ` ${r.id}`}`);
    await this.drain(to);
  }

  /** The app consumes the inbox (`#drain`): texts are shown, receipts consumed. */
  async drain(s: Side): Promise<void> {
    const dev = this.devices[s];
    for (const m of dev.engine.inbox()) {
      if (m.type !== 'receipt') {
        if (dev.app.seen.has(m.id)) this.violations.push(`duplicate: ${s}'s app was shown ${m.id} twice`);
        dev.app.seen.add(m.id);
        this.everShown.add(m.id);
      }
      await dev.engine.consume(m.from, m.id);
    }
  }

  /** `#encryptReceipts(peer)`: every owed receipt into the outbox; one that cannot be encrypted is dropped. */
  async encryptReceipts(s: Side): Promise<void> {
    const engine = this.devices[s].engine;
    const peerId = this.deviceId(other(s));
    while (engine.pendingReceiptCount(peerId) > 0) {
      const ids = engine.pendingReceipts().find((p) => p.peer === peerId)?.ids.slice(0, 100) ?? [];
      try {
        await engine.encryptReceipts(peerId);
      } catch (e) {
        const code = isParleyError(e) ? e.code : 'INTERNAL';
        if (code === 'SESSION_NOT_FOUND') return; // kept owed until a session exists (after a reset)
        if (KEEP_RECEIPT_ON_ERROR.has(code)) throw e;
        totals.receiptsDropped += ids.length;
        this.trace(`${s} drops receipts [${ids.join(' ')}]: ${code}`);
        await engine.dropReceipts(peerId, ids);
        return;
      }
    }
  }

  async sendReceipts(s: Side): Promise<void> {
    await this.encryptReceipts(s);
    await this.flush(this.devices[s].engine, s);
  }

  /** `ParleyClient.send` of a text. */
  async sendText(s: Side, note = ''): Promise<void> {
    const dev = this.devices[s];
    const peerId = this.deviceId(other(s));
    if (dev.engine.pendingReceiptCount(peerId) > 0) await this.encryptReceipts(s);
    const bundle = dev.engine.needsBundle(peerId) ? await this.takeBundle(other(s)) : undefined;
    const id = this.id(s[0]!);
    await dev.engine.encrypt(peerId, text(id), { messageId: id, type: 'text', ...(bundle ? { bundle } : {}) });
    const seq = decodePayload(unsafeTestingRaw(dev.store).get(`unconfirmed/${peerId}/${id}`)!).seq;
    dev.sent.add(id);
    this.texts.set(id, { id, from: s, seq, clone: false });
    totals.texts++;
    this.trace(`${s} sends ${id} seq ${seq}${bundle ? ' (new session)' : ''}${note}`);
    await this.flush(dev.engine, s);
  }

  /** The app polls message gaps and marks them reported. */
  async reportGaps(): Promise<void> {
    for (const s of SIDES) {
      const dev = this.devices[s];
      for (const g of dev.engine.messageGaps(GAP_TIMEOUT_MS)) {
        if (g.peer !== this.deviceId(other(s))) continue;
        for (const seq of g.seqs) dev.app.gaps.add(seq);
        this.trace(`${s}'s app reports gaps [${g.seqs.join(' ')}]`);
        await dev.engine.markGapsReported(g.peer, g.seqs);
      }
    }
  }

  /** A (re)started device: its engine opened on `store`, then the client's login steps. */
  async replace(s: Side, store: MemoryStore): Promise<void> {
    const dev = this.devices[s];
    await dev.engine.close();
    dev.store = store;
    dev.engine = await this.open(store);
    await this.publish(s);
    await this.drain(s);
    await this.sendReceipts(s);
    await this.flush(dev.engine, s);
  }

  // ------------------------------------------------------------------ commands

  async run(c: Command): Promise<void> {
    this.clock += 1;
    this.trace(`> ${describeCommand(c)}`);
    switch (c.kind) {
      case 'send':
        return this.sendText(c.from);
      case 'deliver': {
        const q = this.queues[c.to];
        if (q.length === 0) return;
        return this.deliver(c.to, c.pick % Math.min(q.length, REORDER_WINDOW));
      }
      case 'receipts':
        return this.sendReceipts(c.side);
      case 'snapshot': {
        const dev = this.devices[c.side];
        dev.snapshots.push({ raw: rawCopy(dev.store), app: copyApp(dev.app), sent: new Set(dev.sent) });
        if (dev.snapshots.length > SNAPSHOTS_KEPT) dev.snapshots.shift();
        totals.snapshots++;
        return;
      }
      case 'restore': {
        const dev = this.devices[c.side];
        if (dev.snapshots.length === 0) return;
        const snap = dev.snapshots[c.pick % dev.snapshots.length]!;
        const store = new MemoryStore();
        await store.setMany([...new Map([...snap.raw].map(([k, v]) => [k, v.slice()] as [string, Uint8Array]))]);
        dev.app = copyApp(snap.app);
        dev.sent = new Set(snap.sent);
        totals.restores++;
        return this.replace(c.side, store);
      }
      case 'wipe': {
        const dev = this.devices[c.side];
        const raw = rawCopy(dev.store);
        for (const k of [...raw.keys()]) {
          if (k.startsWith('session/')) raw.delete(k);
          else if (k.startsWith('peer/')) {
            const rec = JSON.parse(new TextDecoder().decode(raw.get(k)!)) as { sessions: string[]; archived?: string[] };
            rec.sessions = [];
            delete rec.archived;
            raw.set(k, text(JSON.stringify(rec)));
          }
        }
        const store = new MemoryStore();
        await store.setMany([...raw]);
        totals.wipes++;
        return this.replace(c.side, store);
      }
      case 'clone': {
        const dev = this.devices[c.side];
        const store = new MemoryStore();
        await store.setMany([...rawCopy(dev.store)]);
        const clone = await this.open(store);
        const peer = other(c.side);
        const peerId = this.deviceId(peer);
        const bundle = clone.needsBundle(peerId) ? await this.takeBundle(peer) : undefined;
        const id = this.id(`${c.side[0]}c`);
        await clone.encrypt(peerId, text(id), { messageId: id, type: 'text', ...(bundle ? { bundle } : {}) });
        const seq = decodePayload(unsafeTestingRaw(store).get(`unconfirmed/${peerId}/${id}`)!).seq;
        this.texts.set(id, { id, from: c.side, seq, clone: true });
        totals.clones++;
        totals.cloneTexts++;
        this.trace(`clone of ${c.side} sends ${id} seq ${seq}${bundle ? ' (new session)' : ''}`);
        await this.flush(clone, c.side);
        await clone.close();
        return;
      }
      case 'advance':
        this.clock += c.ms;
        await this.sendDeferredResets();
        return this.reportGaps();
    }
  }

  /** The client's timer: reset requests held back by the interval go out once it passed. */
  async sendDeferredResets(): Promise<void> {
    if (!this.healing) return;
    for (const s of SIDES) {
      const queued = await this.devices[s].engine.requestDeferredResets();
      if (queued.length === 0) continue;
      totals.resetRequests += queued.length;
      this.trace(`${s} sends ${queued.length} deferred reset request(s)`);
      await this.flush(this.devices[s].engine, s);
    }
  }

  /** Delivers until the relay is empty (bounded); returns the number of deliveries. */
  async deliverAll(): Promise<number> {
    let n = 0;
    while ((this.queues.alice.length > 0 || this.queues.bob.length > 0) && n < 2_000) {
      for (const s of SIDES) {
        if (this.queues[s].length > 0) {
          await this.deliver(s, 0);
          n++;
        }
      }
    }
    return n;
  }

  async settle(): Promise<void> {
    this.trace('> settle');
    for (let round = 0; round < SETTLE_ROUNDS; round++) {
      totals.settleRounds++;
      this.clock += Math.max(RESET_APPLY_INTERVAL_MS, RESET_REQUEST_INTERVAL_MS, GAP_TIMEOUT_MS) + 1;
      await this.sendDeferredResets();
      if (round === 0) for (const s of SIDES) await this.sendText(s, ' (closing)');
      let moved = 0;
      for (let pass = 0; pass < 3; pass++) {
        for (const s of SIDES) await this.sendReceipts(s);
        moved += await this.deliverAll();
      }
      this.clock += GAP_TIMEOUT_MS + 1;
      await this.reportGaps();
      if (moved === 0 && round > 0) break;
    }
  }

  /** Rules 2 and 3 (rule 1 and 4 are checked as they happen). */
  check(): void {
    for (const s of SIDES) {
      if (this.queues[s].length > 0) this.violations.push(`relay still holds ${this.queues[s].length} envelope(s) for ${s} after settle`);
    }
    for (const m of this.texts.values()) {
      if (m.clone) continue;
      const sender = this.devices[m.from];
      const receiver = this.devices[other(m.from)];
      if (receiver.app.seen.has(m.id)) totals.seenAtEnd++;
      else if (this.failed.has(m.id)) totals.excusedFailed++;
      else if (receiver.app.gaps.has(m.seq)) totals.excusedGap++;
      else if (!sender.sent.has(m.id)) totals.excusedRollback++;
      else if (ACCEPT_SEQ_MASKING && this.#masked(m, receiver)) totals.excusedMasked++;
      else {
        const unconfirmed = sender.engine.unconfirmedCount(this.deviceId(receiver.side));
        const errors = this.errorsOf.get(m.id)?.join(', ') ?? 'none';
        this.violations.push(
          `lost: ${m.id} (${m.from}→${receiver.side}, seq ${m.seq}) neither seen, reported failed, covered by a gap nor rolled back; its deliveries failed with: ${errors}; the sender has ${unconfirmed} unconfirmed`,
        );
      }
    }
  }

  /**
   * Rule 2e: the receiver's current app saw another text of the sender with the same seq, and the
   * message was never refused, or was healed and shown once before a restore of the receiver
   * erased it (the healing worked; the rollback undid it, and the reused seq hides the gap).
   */
  #masked(m: SentText, receiver: Device): boolean {
    if (this.errorsOf.has(m.id) && !this.everShown.has(m.id)) return false;
    for (const o of this.texts.values()) if (o.id !== m.id && o.from === m.from && o.seq === m.seq && receiver.app.seen.has(o.id)) return true;
    return false;
  }

  async close(): Promise<void> {
    for (const s of SIDES) await this.devices[s].engine.close();
  }
}

/** Runs one schedule; resolves to the violations (empty when the rules hold). */
async function runSchedule(cmds: readonly Command[], healing: boolean): Promise<{ violations: string[]; log: string[] }> {
  const world = new World(healing);
  await world.init();
  try {
    for (const c of cmds) await world.run(c);
    await world.settle();
    world.check();
  } finally {
    await world.close();
  }
  return { violations: world.violations, log: world.log };
}

const schedules = fc.array(command, { minLength: 1, maxLength: MAX_COMMANDS, size: 'max' });

function failure(cmds: readonly Command[], violations: readonly string[], log: readonly string[]): Error {
  return new Error(`${violations.join('\n')}\n--- schedule ---\n${JSON.stringify(cmds)}\n${cmds.map(describeCommand).join('\n')}\n--- trace ---\n${log.join('\n')}`);
}

test('healing property: random schedules with rollbacks, clones and wiped sessions deliver every message once or report it', async () => {
  if (REPLAY) {
    const { violations, log } = await runSchedule(REPLAY, true);
    if (violations.length > 0) throw failure(REPLAY, violations, log);
    return;
  }
  const started = performance.now();
  await fc.assert(
    fc.asyncProperty(schedules, async (cmds) => {
      totals.runs++;
      totals.commands += cmds.length;
      const { violations, log } = await runSchedule(cmds, true);
      if (violations.length > 0) throw failure(cmds, violations, log);
    }),
    { seed: SEED, numRuns: RUNS, includeErrorInReport: true },
  );
  console.log(`healing-properties: ${JSON.stringify({ seed: SEED, ms: Math.round(performance.now() - started), ...totals })}`);
  assert.ok(totals.resetsApplied > 0 && totals.restores > 0 && totals.clones > 0 && totals.wipes > 0, 'the schedules exercised healing');
});

test('self-check: with reset requests switched off, the same schedules lose messages', async () => {
  let failing = 0;
  const samples = fc.sample(schedules, { seed: SEED, numRuns: RUNS });
  for (const cmds of samples) if ((await runSchedule(cmds, false)).violations.length > 0) failing++;
  console.log(`healing-properties self-check: ${failing} of ${samples.length} schedules lose a message without healing`);
  assert.ok(failing >= samples.length / 10, `without healing at least a tenth of the schedules must fail the rules (${failing} of ${samples.length})`);
});

// ---------------------------------------------------------------------------------------------
// Findings (see the header): minimal schedules, run through the same harness and rules. They
// fail until the engine is fixed.

/** Runs a fixed schedule and asserts the rules hold, with its trace on failure. */
async function holds(cmds: readonly Command[]): Promise<void> {
  const { violations, log } = await runSchedule(cmds, true);
  if (violations.length > 0) throw failure(cmds, violations, log);
}

const FINDING_A: Command[] = [
  { kind: 'send', from: 'alice' },
  { kind: 'deliver', to: 'bob', pick: 0 },
  { kind: 'send', from: 'bob' },
  { kind: 'snapshot', side: 'bob' },
  { kind: 'send', from: 'alice' },
  { kind: 'snapshot', side: 'alice' },
  { kind: 'deliver', to: 'alice', pick: 0 },
  { kind: 'send', from: 'alice' },
  { kind: 'deliver', to: 'bob', pick: 0 },
  { kind: 'restore', side: 'alice', pick: 0 },
  { kind: 'restore', side: 'bob', pick: 0 },
  { kind: 'deliver', to: 'bob', pick: 0 },
];

const FINDING_B: Command[] = [
  { kind: 'snapshot', side: 'alice' },
  { kind: 'send', from: 'alice' },
  { kind: 'restore', side: 'alice', pick: 4 },
  { kind: 'send', from: 'alice' },
  { kind: 'restore', side: 'alice', pick: 2 },
  { kind: 'clone', side: 'alice' },
  { kind: 'send', from: 'alice' },
  { kind: 'snapshot', side: 'bob' },
  { kind: 'restore', side: 'alice', pick: 2 },
  { kind: 'send', from: 'alice' },
  { kind: 'restore', side: 'bob', pick: 5 },
];

const FINDING_C_CLONE: Command[] = [
  { kind: 'clone', side: 'bob' },
  { kind: 'snapshot', side: 'alice' },
  { kind: 'send', from: 'bob' },
  { kind: 'deliver', to: 'alice', pick: 1 },
  { kind: 'restore', side: 'alice', pick: 0 },
];

const FINDING_C_ROLLBACK: Command[] = [
  { kind: 'snapshot', side: 'bob' },
  { kind: 'send', from: 'bob' },
  { kind: 'deliver', to: 'alice', pick: 0 },
  { kind: 'snapshot', side: 'alice' },
  { kind: 'restore', side: 'bob', pick: 0 },
  { kind: 'send', from: 'bob' },
  { kind: 'deliver', to: 'alice', pick: 0 },
  { kind: 'restore', side: 'alice', pick: 0 },
];

test('finding A (fixed): a rolled-back sender\'s counter past the end of an older held chain is refused, and the refusal asks for a reset', async () => {
  const alice = await device();
  const bob = await device();
  const aliceId = alice.engine.deviceId;
  const bobId = bob.engine.deviceId;
  const send = (from: ConversationEngine, to: string, body: string, bundle?: FetchedBundle) =>
    from.encrypt(to, text(body), { messageId: mid(), type: 'text', ...(bundle ? { bundle } : {}) });
  await deliver(bob.engine, alice.engine, await send(alice.engine, bobId, 'a1', takeBundle(bob.upload))); // Alice's chain 1, counter 0
  const b1 = await send(bob.engine, aliceId, 'b1');
  await send(alice.engine, bobId, 'a2'); // chain 1, counter 1: held back by the relay (never delivered)
  const backup = rawCopy(alice.store); // Alice's backup: chain 1 after 2 messages
  await deliver(alice.engine, bob.engine, b1); // Alice's next send starts chain 2
  const a3 = await send(alice.engine, bobId, 'a3'); // chain 2, counter 0; its header says chain 1 had 2 messages
  assert.equal((await deliver(bob.engine, alice.engine, a3)).kind, 'message'); // Bob keeps a2's key: chain 1 stays held
  const restoredStore = new MemoryStore();
  await restoredStore.setMany([...backup]);
  const restored = await ConversationEngine.open({ store: restoredStore });
  const a4 = await send(restored, bobId, 'a4'); // chain 1, counter 2: a counter chain 1 never had
  await assert.rejects(deliver(bob.engine, restored, a4), (e: unknown) => {
    assert.ok(isParleyError(e));
    // The ratchet answers DUPLICATE_MESSAGE (the chain does not record its length); receive()
    // never throws that for a seen relay id, so it asks for a reset as a rollback.
    assert.ok(resetReasonOf(e), `a counter past the chain's end is a rollback and must ask for a reset; got ${e.code}: ${e.message}`);
    return true;
  });
});

test('finding A (schedule): the message refused after a sender rollback is resent and seen once', () => holds(FINDING_A));

test('finding B (schedule): a failure within the reset request interval is asked for later, not dropped', () => holds(FINDING_B));

test('limitation C (schedule): a clone\'s message with the same seq hides the gap a restored receiver would report (rule 2e)', () => holds(FINDING_C_CLONE));

test('limitation C (schedule, no clone): a rolled-back sender\'s message with the same seq hides the gap (rule 2e)', () => holds(FINDING_C_ROLLBACK));
