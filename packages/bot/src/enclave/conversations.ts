/**
 * Conversations with several members, the bot's side (README "Conversations and handoff"). Runs
 * only inside the enclave.
 *
 * The enclave keeps one `ConversationBook` on its sealed store, the store its engine uses: member
 * lists, epochs, sequence numbers and the history of every conversation are sealed like the
 * sessions, and the host sees sealed blobs only.
 *
 * - **Receiving.** A delivered engine message of payload type `'conversation'` goes through
 *   `book.receive` in the same commit as its decryption. A `message` stays in the engine's inbox
 *   for the handler (consumed with the run's commit, exactly like a one-to-one message, so a crash
 *   re-runs it); every other frame (a member-list change, a leave...) and every refused one is
 *   consumed at once. A refusal (not from the owner, not from a member, malformed) changes
 *   nothing and is reported to the host as a typed fact. A message the book *holds* (its sender
 *   names a newer member list that has not arrived yet) stays in the inbox too, listed as held
 *   (sealed); the member list that admits its sender releases it to the handler, one that does
 *   not drops it (consumed).
 * - **Replying.** A reply is one frame, prepared once per reply id: the frame and its recipients
 *   are kept sealed until the message is consumed, so a handler re-run re-sends the very same
 *   frame (same id, same sequence number: members dedupe it and see no gap). It is encrypted to
 *   every current member but the bot under that id; a member the bot has no session with gets
 *   one from its published bundle, which the host fetches (`needBundle`, `resend`). A member
 *   that cannot be encrypted to is reported; the reply fails only when it reached no one. A bot
 *   removed from the member list replies nowhere (`FORBIDDEN`, `notMember`).
 * - **Handoff.** `ctx.handoff` sends a `handoff` frame to the owner (the customer's device opens
 *   the ticket); the conversation is noted as the customer's latest handoff.
 * - **Consent and forms** (README "Consent and forms in a handler", `consent-runs.ts`). A
 *   verified receipt and covered form values stay in the inbox and run the handler like a
 *   message (`message.consent`, `message.form`); form values are checked again before every run.
 *   `ctx.requestConsent` / `ctx.requestForm` send a `consentRequest` / `formRequest` frame to
 *   the owner, prepared once per reply index like a reply.
 * - **Unclaimed tickets.** When the host reports a ticket unclaimed, the configured reply goes
 *   into the conversation the customer owns with the bot, once per ticket id, under an id
 *   derived from it.
 */
import { ParleyError, concatBytes, fromBase64, getCrypto, toBase64, toHex, utf8, type MessageContent, type OutgoingContent } from '@parley/protocol';
import {
  ConversationBook,
  decodeFrame,
  type ConversationEvent,
  type ConversationInfo,
  type ConversationMessage,
  type FrameContent,
  type Member,
  type PreparedFrame,
} from '@parley/engine';
import type { EnclaveEngine, Outgoing, ReceivedFrame, ReceivedMessage } from './engine.js';
import type { SealedKeyValueStore } from './sealed-store.js';
import { eraseInEnclave } from './erasure.js';
import type { ArchiveOut } from './archiver.js';
import type { ArchivableMessage } from '@parley/engine';
import { boundaryRefusal, consentEntries, consentRunOfEvent, consentRunOfFrame, formRefusal, type ConsentFields } from './consent-runs.js';
import type { BotConsentEntry, BotConsentRequest, BotFormRequest } from '../handler-api.js';

/** A conversation message for the handler: the message and the conversation it came in (a consent frame's run: `consent` or `form`, consent-runs.ts). */
export type ConversationRun = ReceivedMessage & ConsentFields & { readonly conversation: string };

/** What a delivered frame turned out to be. */
export interface TakenFrame {
  /**
   * Messages to run the handler for, in order (they stay in the inbox until then): the frame's
   * own message, or the held messages a member list released.
   */
  readonly runs: ConversationRun[];
  /** The frame itself was consumed (applied, refused, a duplicate): nothing more to do for it but its receipt. */
  readonly consumed: boolean;
  /** The engine's typed refusal of the frame (it changed nothing). */
  readonly refused?: ParleyError;
  /** Envelopes in the sealed outbox to hand to the host once the commit is done (a deletion receipt). */
  readonly sends?: Outgoing[];
}

/** A message the book holds, left in the engine's inbox until a member list releases or drops it. */
interface HeldFrame {
  readonly from: string;
  readonly id: string;
  /** Its conversation and the epoch its sender named. */
  readonly c: string;
  readonly e: number;
}

/** A member the bot could not send to (the others got it). */
export interface SendFailure {
  readonly peer: string;
  readonly messageId: string;
  readonly code: string;
  readonly reason?: string;
}

export interface BotConversationsOptions {
  readonly store: SealedKeyValueStore;
  readonly engine: EnclaveEngine;
  /** Runs `fn` as one sealed commit (entry.ts's `commit`). */
  commit<T>(fn: () => Promise<T>): Promise<T>;
  /** Hands an envelope, already in the sealed outbox, to the host. */
  send(out: Outgoing): void;
  /** Resolves once `peer`'s bundle was handed in by the host, or the wait ran out. */
  bundleArrival(peer: string): Promise<void>;
  /** A member could not be sent to. */
  onSendFailed(failure: SendFailure): void;
  /** Ends the enclave (memory may be ahead of the sealed state). */
  poison(reason: string): never;
  /**
   * The compliance archive (archiver.ts), when the bot's disclosure is on: `seal` runs inside
   * the commit that prepares a message frame (the submission is kept with it), `post` hands the
   * sealed submission to the host after that commit.
   */
  readonly archiver?: { seal(m: ArchivableMessage): Promise<ArchiveOut | undefined>; post(out: ArchiveOut): void };
}

/** Prepared reply frames, until their message is consumed: `bot-conv-out/<from>/<id>/<index>`. */
const OUT_PREFIX = 'bot-conv-out/';
/** The conversation of a customer's latest `ctx.handoff`: `bot-handoff/<customer>`. */
const HANDOFF_PREFIX = 'bot-handoff/';
/** The messages the book holds (`HeldFrame[]`, oldest first; the book keeps at most {@link MAX_HELD}). */
const HELD_KEY = 'bot-held';
const MAX_HELD = 50;
/** Ticket ids the unclaimed reply went out for (the newest {@link MAX_UNCLAIMED_KEPT}). */
const UNCLAIMED_KEY = 'bot-unclaimed';
const MAX_UNCLAIMED_KEPT = 1_000;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

const outPrefix = (from: string, id: string): string => `${OUT_PREFIX}${from}/${id}/`;

/** Codes a refused frame is reported with: anything but a storage failure is the frame's fault. */
function isRefusal(e: unknown): e is ParleyError {
  return e instanceof ParleyError && e.code !== 'STORAGE_INTEGRITY' && e.code !== 'STORAGE_QUOTA';
}

/** An error's `details.reason`, when it is a plain identifier (never a value). */
function reasonOf(e: unknown): string | undefined {
  const r = e instanceof ParleyError ? e.details?.reason : undefined;
  return typeof r === 'string' && /^[A-Za-z]{1,40}$/.test(r) ? r : undefined;
}

/** A message the book applied, as the handler runs it. */
function runOf(m: ConversationMessage): ConversationRun {
  return { ...m.content, from: m.from, id: m.id, sentAt: m.sentAt, conversation: m.conversation };
}

/** A frame's content as the handler sees it. */
function contentOf(m: FrameContent | undefined): MessageContent {
  if (m?.type === 'text') return { type: 'text', text: m.text ?? '' };
  if (m?.type === 'json') return { type: 'json', json: m.json };
  return { type: 'binary', binary: fromBase64(m?.b64 ?? '') };
}

/** The id of the unclaimed reply for `ticketId`: deterministic, never a handler reply's. */
export function unclaimedReplyId(ticketId: string): string {
  return toHex(getCrypto().sha256(concatBytes(utf8('parley/v1/bot-unclaimed'), new Uint8Array([0]), utf8(ticketId))).subarray(0, 16));
}

export class BotConversations {
  readonly #o: BotConversationsOptions;
  readonly #book: ConversationBook;
  /** `unclaimed` calls, one at a time (each checks, then records, its ticket). */
  #unclaimedChain: Promise<unknown> = Promise.resolve();

  private constructor(o: BotConversationsOptions, book: ConversationBook) {
    this.#o = o;
    this.#book = book;
  }

  /** Opens the bot's conversations from the sealed store. */
  static async open(o: BotConversationsOptions): Promise<BotConversations> {
    return new BotConversations(o, await ConversationBook.open({ store: o.store, deviceId: o.engine.deviceId, consent: o.engine.consent, erasure: o.engine.erasure }));
  }

  /**
   * A frame just decrypted: applied to the book. Call inside the delivery's commit; a frame that
   * is not a message for the handler is consumed in it.
   */
  async take(f: ReceivedFrame, senderStaff: { roles: readonly string[]; displayName: string } | undefined): Promise<TakenFrame> {
    let ev: ConversationEvent;
    try {
      ev = await this.#book.receive(f.from, f.frame, { messageId: f.id, sentAt: f.sentAt, ...(senderStaff ? { senderStaff } : {}) });
    } catch (e) {
      // The book refuses before it writes: nothing changed. Anything else leaves memory unsure.
      if (!isRefusal(e)) this.#o.poison('a conversation frame could not be applied');
      await this.#consume([f]);
      return { runs: [], consumed: true, refused: boundaryRefusal(e) };
    }
    // The book wrote: from here on a failure leaves memory ahead of the commit.
    try {
      if (ev.kind === 'message') return { runs: [runOf(ev.message)], consumed: false };
      // A verified receipt, covered form values: the handler runs (consent-runs.ts), the frame stays in the inbox until then.
      const consentRun = consentRunOfEvent(f, ev);
      if (consentRun) return { runs: [consentRun], consumed: false };
      if (ev.kind === 'erased') {
        const out = await eraseInEnclave(this.#o.store, this.#o.engine, ev, f.id);
        await this.#consume([f]);
        return { runs: [], consumed: true, ...(out ? { sends: [out] } : {}) };
      }
      if (ev.kind === 'held') {
        const { c, e } = decodeFrame(f.frame);
        await this.#hold({ from: f.from, id: f.id, c: c ?? '', e });
        return { runs: [], consumed: false };
      }
      const runs = ev.kind === 'members' ? await this.#settleHeld(ev.conversation, ev.released ?? []) : [];
      await this.#consume([f]);
      return { runs, consumed: true };
    } catch {
      this.#o.poison('a conversation frame could not be applied');
    }
  }

  async #consume(frames: readonly { from: string; id: string }[]): Promise<void> {
    try {
      for (const f of frames) await this.#o.engine.consume(f.from, f.id);
    } catch {
      this.#o.poison('a conversation frame could not be consumed');
    }
  }

  async #heldList(): Promise<HeldFrame[]> {
    const raw = await this.#o.store.get(HELD_KEY);
    return raw ? (JSON.parse(textDecoder.decode(raw)) as HeldFrame[]) : [];
  }

  /** Lists a held message (its inbox entry stays); past the book's cap the oldest is dropped, as the book drops it. */
  async #hold(h: HeldFrame): Promise<void> {
    const list = [...(await this.#heldList()), h];
    const dropped = list.splice(0, Math.max(0, list.length - MAX_HELD));
    await this.#consume(dropped);
    await this.#o.store.setMany([[HELD_KEY, textEncoder.encode(JSON.stringify(list))]]);
  }

  /**
   * A member list of `conversation` arrived: the messages it released go to the handler; held
   * ones it did not release and that named no newer list are dropped (the book dropped them).
   */
  async #settleHeld(conversation: ConversationInfo, released: readonly ConversationMessage[]): Promise<ConversationRun[]> {
    const list = await this.#heldList();
    const mine = list.filter((h) => h.c === conversation.id); // ct-ok: public ids
    if (mine.length === 0) return released.map(runOf);
    const isReleased = (h: HeldFrame): boolean => released.some((m) => m.from === h.from && m.id === h.id); // ct-ok: public ids
    // Kept: those naming a still newer list, while the bot is a member (as the book keeps them).
    const member = this.#book.isMember(conversation.id);
    const stays = (h: HeldFrame): boolean => member && !isReleased(h) && h.e > conversation.epoch;
    const keep = list.filter((h) => h.c !== conversation.id || stays(h)); // ct-ok: public ids
    await this.#consume(mine.filter((h) => !isReleased(h) && !stays(h)));
    await this.#o.store.setMany([[HELD_KEY, textEncoder.encode(JSON.stringify(keep))]]);
    return released.map(runOf);
  }

  /**
   * Conversation messages a crash left unconsumed (their handler run did not finish), to run
   * again. Held messages stay held; anything else left in the inbox is consumed.
   */
  async unfinished(): Promise<ConversationRun[]> {
    const out: ConversationRun[] = [];
    const held = await this.#heldList();
    for (const f of this.#o.engine.unconsumedFrames()) {
      if (held.some((h) => h.from === f.from && h.id === f.id)) continue; // ct-ok: public ids
      let frame;
      try {
        frame = decodeFrame(f.frame);
      } catch {
        frame = undefined;
      }
      const consentRun = frame && frame.c !== undefined && this.#book.get(frame.c) ? consentRunOfFrame(f, frame, this.#book.consents(frame.c)) : undefined;
      if (frame?.k === 'message' && frame.c !== undefined && this.#book.get(frame.c)) {
        out.push({ ...contentOf(frame.m), from: f.from, id: f.id, sentAt: f.sentAt, conversation: frame.c });
      } else if (consentRun) {
        out.push(consentRun);
      } else {
        await this.#o.commit(() => this.#o.engine.consume(f.from, f.id));
      }
    }
    return out;
  }

  /** `message.conversation` of a run: the conversation as it stands now. */
  snapshot(id: string): { id: string; members: Member[]; epoch: number } | undefined {
    const c = this.#book.get(id);
    return c && { id: c.id, members: c.members, epoch: c.epoch };
  }

  /** `ctx.members()`: the current members. */
  members(id: string): Member[] {
    return this.#book.get(id)?.members ?? [];
  }

  /**
   * `ctx.reply` in a conversation: the reply with id `messageId` (deterministic per message and
   * reply index), to every current member but the bot. `also` is written with the frame's
   * preparation (the failure count, for the failure reply).
   * @throws ParleyError `FORBIDDEN` (`notMember`) when the bot is no longer a member; the first
   *   member's error when no member could be sent to.
   */
  async reply(msg: ConversationRun, index: number, messageId: string, content: OutgoingContent, also?: () => Promise<void>): Promise<void> {
    const key = `${outPrefix(msg.from, msg.id)}${index}`;
    await this.#fanOut(msg.conversation, messageId, () => this.#book.prepareMessage(msg.conversation, content, messageId), { key, archive: true, ...(also ? { also } : {}) });
  }

  /**
   * `ctx.handoff`: a `handoff` frame to the conversation's owner.
   * @throws ParleyError `USAGE` for a bad queue or reason, `FORBIDDEN` (`notMember`).
   */
  async handoff(msg: ConversationRun, messageId: string, queue: string, reason: string): Promise<void> {
    const owner = this.#book.get(msg.conversation)?.owner;
    const note = owner ? async () => this.#o.store.setMany([[`${HANDOFF_PREFIX}${owner}`, textEncoder.encode(msg.conversation)]]) : undefined;
    // Not sequenced (only the owner gets it): preparing it again in a re-run changes nothing.
    await this.#fanOut(msg.conversation, messageId, () => this.#book.prepareHandoff(msg.conversation, queue, reason), note ? { also: note } : {});
  }

  /**
   * `ctx.requestConsent`: a `consentRequest` frame with id `requestId` to the owner, prepared
   * once per reply index (kept like a reply's, so a re-run re-sends the same frame).
   * @throws ParleyError `USAGE` (a bad request), `FORBIDDEN` (`notMember`).
   */
  async requestConsent(msg: ConversationRun, index: number, messageId: string, requestId: string, request: BotConsentRequest): Promise<void> {
    const key = `${outPrefix(msg.from, msg.id)}${index}`;
    await this.#fanOut(msg.conversation, messageId, () => this.#book.prepareConsentRequest(msg.conversation, { id: requestId, ...request }), { key });
  }

  /** `ctx.requestForm`: a `formRequest` frame with id `formId` to the owner (kept like {@link requestConsent}'s). */
  async requestForm(msg: ConversationRun, index: number, messageId: string, formId: string, request: BotFormRequest): Promise<void> {
    const key = `${outPrefix(msg.from, msg.id)}${index}`;
    await this.#fanOut(msg.conversation, messageId, () => this.#book.prepareFormRequest(msg.conversation, { id: formId, fields: request.fields, consentRequest: request.consentRequest }), { key });
  }

  /** `ctx.consents()`: the conversation's receipts, with `valid` and `withdrawn`. */
  consents(id: string): BotConsentEntry[] {
    return consentEntries(this.#book.consents(id));
  }

  /** Why a form run's values may no longer reach the handler (checked before every run), or `undefined`. */
  formRefusal(msg: ConversationRun): ParleyError | undefined {
    return msg.form ? formRefusal(msg.form, this.#book.consents(msg.conversation)) : undefined;
  }

  /** The bot's own message `messageId` just prepared, sealed into the archive outbox (when the archive is on). */
  async #sealForArchive(conversation: string, messageId: string): Promise<ArchiveOut | undefined> {
    const archiver = this.#o.archiver;
    if (!archiver) return undefined;
    const m = this.#book.history(conversation).find((h) => h.id === messageId && h.from === this.#o.engine.deviceId); // ct-ok: public ids
    if (!m) return undefined;
    return archiver.seal({ conversation, id: m.id, from: m.from, at: m.sentAt, content: m.content });
  }

  /** The prepared-frame records of a message's replies, deleted with its consumption. */
  async preparedKeys(from: string, id: string): Promise<string[]> {
    return this.#o.store.keys(outPrefix(from, id));
  }

  /**
   * A ticket whose `notify` is this bot waited unclaimed: `content` goes into the conversation
   * `customer` owns with the bot (the one of its latest `ctx.handoff`, else another one it owns
   * with the bot), once per ticket id.
   * @returns whether it was sent now.
   */
  unclaimed(ticketId: string, customer: string, content: OutgoingContent | undefined): Promise<boolean> {
    const run = this.#unclaimedChain.then(async () => {
      if (content === undefined) return false;
      const done = await this.#unclaimedDone();
      if (done.includes(ticketId)) return false;
      const conversation = await this.#conversationOf(customer);
      if (!conversation) return false;
      const messageId = unclaimedReplyId(ticketId);
      const record = async (): Promise<void> => {
        const next = [...done, ticketId].slice(-MAX_UNCLAIMED_KEPT);
        await this.#o.store.setMany([[UNCLAIMED_KEY, textEncoder.encode(JSON.stringify(next))]]);
      };
      await this.#fanOut(conversation.id, messageId, () => this.#book.prepareMessage(conversation.id, content, messageId), { also: record, archive: true });
      return true;
    });
    this.#unclaimedChain = run.catch(() => undefined);
    return run;
  }

  async #unclaimedDone(): Promise<string[]> {
    const raw = await this.#o.store.get(UNCLAIMED_KEY);
    if (!raw) return [];
    const v: unknown = JSON.parse(textDecoder.decode(raw));
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  }

  /** The conversation `customer` owns with this bot, still a member: its latest handoff's, else any. */
  async #conversationOf(customer: string): Promise<ConversationInfo | undefined> {
    const owned = (c: ConversationInfo | undefined): c is ConversationInfo => !!c && c.owner === customer && this.#book.isMember(c.id); // ct-ok: public device ids
    const noted = await this.#o.store.get(`${HANDOFF_PREFIX}${customer}`);
    const latest = noted ? this.#book.get(textDecoder.decode(noted)) : undefined;
    if (owned(latest)) return latest;
    return this.#book.list().filter(owned).at(-1);
  }

  /**
   * Prepares the frame once (kept under `opts.key` when given, so a re-run re-sends the same
   * frame) and encrypts it to every recipient that is still a member, each in its own commit.
   */
  async #fanOut(conversation: string, messageId: string, prepare: () => Promise<PreparedFrame>, opts: { key?: string; also?: () => Promise<void>; archive?: boolean }): Promise<void> {
    const { store, engine } = this.#o;
    if (!this.#book.isMember(conversation)) {
      throw new ParleyError('FORBIDDEN', 'the bot is not a member of this conversation (it was removed): nothing was sent', { details: { reason: 'notMember' } });
    }
    const kept = opts.key ? await store.get(opts.key) : undefined;
    let prepared: PreparedFrame;
    let archived: ArchiveOut | undefined;
    if (kept) {
      const v = JSON.parse(textDecoder.decode(kept)) as { r: string[]; f: string };
      prepared = { recipients: v.r, frame: fromBase64(v.f) };
    } else {
      prepared = await this.#o.commit(async () => {
        await opts.also?.();
        const p = await prepare();
        try {
          if (opts.key) await store.setMany([[opts.key, textEncoder.encode(JSON.stringify({ r: p.recipients, f: toBase64(p.frame) }))]]);
          // Sealed to the compliance archive in the same commit: a re-run finds the kept frame and seals nothing again.
          if (opts.archive) archived = await this.#sealForArchive(conversation, messageId);
        } catch {
          this.#o.poison('a prepared conversation frame could not be kept');
        }
        return p;
      });
      if (archived) this.#o.archiver?.post(archived);
    }
    // Members removed since the frame was prepared get nothing.
    const current = new Set(this.members(conversation).map((m) => m.deviceId));
    const recipients = prepared.recipients.filter((r) => current.has(r));
    await Promise.all(recipients.filter((r) => engine.needsBundle(r)).map((r) => this.#o.bundleArrival(r)));
    const failed: { peer: string; error: unknown }[] = [];
    for (const to of recipients) {
      try {
        const out = await this.#o.commit(() => engine.sendFrame(to, prepared.frame, messageId));
        if (out) this.#o.send(out);
      } catch (error) {
        failed.push({ peer: to, error });
      }
    }
    if (recipients.length > 0 && failed.length === recipients.length) throw failed[0]!.error;
    for (const { peer, error } of failed) {
      const code = error instanceof ParleyError ? error.code : 'INTERNAL';
      const reason = reasonOf(error);
      this.#o.onSendFailed({ peer, messageId, code, ...(reason ? { reason } : {}) });
    }
  }
}
