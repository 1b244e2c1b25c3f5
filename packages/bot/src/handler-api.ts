/**
 * The handler API: what a bot developer writes. Types only; the handler runs inside the enclave.
 *
 * @example
 * // handler.ts
 * import type { BotHandler } from '@parley/bot';
 * const handle: BotHandler = async (message, ctx) => {
 *   if (message.text) await ctx.reply(`You said: ${message.text}`);
 * };
 * export default handle;
 */
import type { MessageContent, OutgoingContent } from '@parley/protocol/wire';
import type { StaffRole } from '@parley/protocol/verify';

/**
 * A message as the handler sees it: the one content model of every Parley side (exactly one of
 * `text`, `json`, `binary`, per `type`, as in `ParleyClient`'s messages) plus its facts.
 */
export type BotMessage = MessageContent & {
  /** Sender's device id. */
  readonly from: string;
  /** The message id (unique per sender). */
  readonly id: string;
  /** Sender's clock when it was sent, ms since the epoch. */
  readonly sentAt: number;
  /**
   * True when an earlier run of the handler for this message did not complete, so this is a
   * second (or later) run: the enclave restarted while it was unfinished, its handler worker
   * was restarted (another run was stuck in a busy loop), or it failed (threw, timed out, asked
   * for an oversize reply) fewer than `maxHandlerFailures` times. Replies of every run carry the
   * same ids (the nth reply to a message always has the same id), so the customer sees each
   * reply once as long as the handler replies deterministically; `ctx.state` is as it was
   * before the first run (a run's changes are kept only when it completes).
   */
  readonly redelivered: boolean;
  /**
   * Present when the sender is a staff device (an agent, a supervisor…) whose staff credential
   * the enclave verified against the bot's pinned `orgKey`: org root → issuer → device, the
   * issuer's policy, expiry and the revocation lists. Absent for customers, and for every sender
   * when the bot has no `orgKey`. A staff device whose credential is expired or revoked never
   * reaches the handler: its messages are refused.
   */
  readonly staff?: StaffSender;
  /**
   * Present when the message came in a conversation with several members (a customer's
   * `client.startConversation`): its id, the member list as it stands when this run started,
   * and the member-list epoch. The handler runs for the messages of every member (the customer,
   * an agent who joined, another bot): {@link BotMessage.from} and {@link BotMessage.staff} say
   * who wrote. Absent for a plain one-to-one message. In a conversation, `ctx.reply` goes to every
   * member but the bot, and `ctx.handoff` asks the customer's device for a human agent.
   */
  readonly conversation?: BotConversation;
  /**
   * Present when this run is for a consent receipt the conversation's owner (the customer's
   * device) signed, which the enclave verified (its signature by the owner's identity key, its
   * conversation, the request it answers) before the handler runs: an answer to a
   * `ctx.requestConsent` (`granted` or `denied`) or a later withdrawal (`withdrawn`). Receipts
   * answering another member's request (an agent's) run the handler too: compare
   * {@link BotConsentAnswer.requestId} with the id `ctx.requestConsent` resolved with. Such a
   * message has `type: 'json'` and `json` holds the same object; no text or bytes.
   */
  readonly consent?: BotConsentAnswer;
  /**
   * Present when this run is for the values of a form the bot asked for (`ctx.requestForm`),
   * which a granted, unwithdrawn receipt of this conversation covers: the enclave checked that
   * before the handler runs, and checks it again before a re-run (after a crash or a failure),
   * so values whose consent was withdrawn in between never reach the handler. Values that are
   * not covered are refused (`FORBIDDEN` `noConsent`) and consumed without a run. Such a
   * message has `type: 'json'` and `json` holds the same object; no text or bytes.
   */
  readonly form?: BotFormValues;
};

/** What `ctx.requestConsent` asks the customer for (checked with the protocol's `checkConsentRequest`). */
export interface BotConsentRequest {
  /** Why the data is asked for, as the customer will read it (1-200 chars). */
  readonly purpose: string;
  /** The fields asked for (1-32 distinct names: a letter, then up to 63 of [A-Za-z0-9_]). */
  readonly fields: readonly string[];
  /** How long the values are kept, in days (a whole number 0-3650). */
  readonly retentionDays: number;
  /** Who controls the data (1-100 chars), e.g. the company's name. */
  readonly controller: string;
}

/** What `ctx.requestForm` asks the customer to fill in. */
export interface BotFormRequest {
  /** The fields asked for (names as in {@link BotConsentRequest.fields}). */
  readonly fields: readonly string[];
  /** The id of the consent request (as `ctx.requestConsent` resolved with) whose granted receipt covers the values. */
  readonly consentRequest: string;
}

/** {@link BotMessage.consent}: a verified consent receipt from the conversation's owner. */
export interface BotConsentAnswer {
  /** The id of the consent request it answers. */
  readonly requestId: string;
  /** The customer's decision: `granted`, `denied`, or `withdrawn` (a withdrawal of an earlier grant). */
  readonly decision: 'granted' | 'denied' | 'withdrawn';
  /** The receipt's id (a form's values name the granted receipt that covers them). */
  readonly receipt: string;
  /** The fields the receipt is about (those of the request). */
  readonly fields: readonly string[];
  /** With `withdrawn`: the id of the receipt withdrawn. */
  readonly withdraws?: string;
}

/** {@link BotMessage.form}: a form's values, covered by a valid receipt of this conversation. */
export interface BotFormValues {
  /** The form's id, as `ctx.requestForm` resolved with. */
  readonly formId: string;
  /** The id of the granted, unwithdrawn receipt that covers the values. */
  readonly receipt: string;
  /** Field name → value (at most 1000 chars each); only fields of the form, only those the receipt covers. */
  readonly values: Readonly<Record<string, string>>;
}

/** One consent receipt of a conversation, as `ctx.consents()` lists it. */
export interface BotConsentEntry {
  /** The receipt's id. */
  readonly id: string;
  /** The id of the consent request it answers. */
  readonly requestId: string;
  readonly decision: 'granted' | 'denied' | 'withdrawn';
  readonly purpose: string;
  readonly fields: readonly string[];
  readonly retentionDays: number;
  readonly controller: string;
  /** The signer's (the customer's device's) clock when it signed, ms since the epoch. */
  readonly at: number;
  /** With `withdrawn`: the id of the receipt withdrawn. */
  readonly withdraws?: string;
  /** Granted and not withdrawn. */
  readonly valid: boolean;
  /** A later receipt withdrew it. */
  readonly withdrawn: boolean;
}

/** A member's role in a conversation: the customer (its owner), a bot, or certified staff. */
export type MemberRole = 'customer' | 'bot' | 'agent' | 'supervisor';

/** One member of a conversation, as its owner (the customer's device) lists it. */
export interface Member {
  /** The member's device id (32 hex chars). */
  readonly deviceId: string;
  /** `customer` for the owner; `bot`, `agent` or `supervisor` as the owner admitted it. */
  readonly role: MemberRole;
  /** Display name (at most 100 chars): a staff member's certified name, the bot's name. */
  readonly name: string;
}

/** {@link BotMessage.conversation}: the conversation a message came in. */
export interface BotConversation {
  /** The conversation id (22 chars of base64url). */
  readonly id: string;
  /** The members (the bot included), as the owner last listed them. */
  readonly members: readonly Member[];
  /** Member-list epoch: 1 at creation, +1 per change by the owner. */
  readonly epoch: number;
}

/** What `ctx.handoff` asks for. */
export interface HandoffRequest {
  /** The queue of human agents to ask (`[A-Za-z0-9_-]{1,64}`, e.g. `'support'`). */
  readonly queue: string;
  /** Why, as the agents will see it in the queue (at most 500 chars; default empty). */
  readonly reason?: string;
}

/** {@link BotMessage.staff}: who the staff sender is, from their verified credential. */
export interface StaffSender {
  /** The person's id in the staff directory (stable across their devices). */
  readonly personId: string;
  /** The name the issuer certified. */
  readonly displayName: string;
  /** Their roles (`agent`, `supervisor`, `compliance`, `admin`). */
  readonly roles: readonly StaffRole[];
  /** When the credential expires, ms since the epoch. */
  readonly expiresAt: number;
}

/** A value `ctx.state` keeps: anything JSON can carry. */
export type JsonValue = null | boolean | number | string | readonly JsonValue[] | { readonly [key: string]: JsonValue };

/**
 * `ctx.state`: this conversation's key-value store, sealed by the enclave and kept across
 * restarts (the host stores only sealed blobs). Per conversation: another customer's handler
 * runs never see it.
 *
 * Consistency: reads see the run's own writes at once; the run's changes become durable
 * together, atomically with the message being consumed, when the handler returns. A run that
 * throws, times out or is interrupted (a crash) changes nothing, so a re-run sees the state
 * exactly as the first run did. Limits: keys of 1..200 characters; all keys and values of one
 * conversation, as JSON, at most 64 KiB. A limit broken is `USAGE` (`details.reason`:
 * `stateKey`, `stateValue`, `stateTooLarge`), thrown by the call that broke it.
 */
export interface HandlerState {
  /** The value stored under `key` (a fresh copy), or `undefined`. */
  get<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined>;
  /** Stores `value` (a JSON value; `undefined`, functions, `BigInt` and cycles are refused) under `key`. */
  set(key: string, value: JsonValue): Promise<void>;
  /** Removes `key`; `true` if it was there. */
  delete(key: string): Promise<boolean>;
  /** Every key and value of this conversation, in insertion order. */
  entries(): Promise<[string, JsonValue][]>;
}

/** Options of `ctx.fetch` (a subset of `fetch`'s). */
export interface EgressFetchInit {
  /** `GET` (default), `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE` or `OPTIONS`. */
  method?: string;
  /** Request headers (not `host`, `connection`, `content-length`, `transfer-encoding`, `upgrade`, `proxy-*`). */
  headers?: Readonly<Record<string, string>> | readonly (readonly [string, string])[];
  /** Request body (at most 1 MiB); not with `GET` or `HEAD`. */
  body?: string | Uint8Array | ArrayBuffer | null;
  /** Time limit of the whole exchange in ms (default 10 000, at most 60 000). */
  timeoutMs?: number;
}

/** What `ctx.fetch` resolves with: the whole response, already read. */
export interface EgressResponse {
  readonly status: number;
  readonly statusText: string;
  /** `status` is 2xx. */
  readonly ok: boolean;
  /** The URL that answered (after redirects). */
  readonly url: string;
  /** Response headers, names in lower case (repeated headers joined with `, `). */
  readonly headers: Readonly<Record<string, string>>;
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
  bytes(): Promise<Uint8Array>;
}

/** What the handler can do. */
export interface BotContext {
  /**
   * Sends a reply to the sender, end-to-end encrypted: a `string` is text, a `Uint8Array` is
   * binary, anything else is JSON (the same rule as `ParleyClient.send`).
   *
   * In a conversation ({@link BotMessage.conversation}) the reply goes to every current member
   * but the bot, one pairwise encrypted copy each under the same message id (members the bot has
   * no session with yet get one from their published prekeys). A bot the owner removed from the
   * member list can no longer reply there: `FORBIDDEN` (`details.reason: 'notMember'`).
   * The nth reply to a message always carries the same id, also in a re-run, so a member sees
   * each reply once.
   */
  reply(content: OutgoingContent): Promise<void>;
  /**
   * Asks for a human: sends a `handoff` frame in this conversation to its owner, the customer's
   * device, whose client opens a ticket in `queue` at the relay (with this bot to notify) and
   * later asks the customer to consent to the agent who claims it. Nothing is shared with an
   * agent by this call: the customer decides. When no agent claims the ticket in time the bot
   * tells the customer so (`BotOptions.handoffUnclaimedReply`) and the host gets a
   * `handoffUnclaimed` event. Counts as a reply for the message's deterministic ids (a re-run
   * sends no second request).
   * @throws ParleyError `USAGE` outside a conversation, or for a bad queue name or reason;
   *   `FORBIDDEN` (`details.reason: 'notMember'`) when the bot is no longer a member.
   */
  handoff(request: HandoffRequest): Promise<void>;
  /**
   * Asks the conversation's owner (the customer's device) for consent: sends a `consentRequest`
   * frame; the customer's app shows it (`consentRequested`) and answers with a signed receipt,
   * which runs the handler with {@link BotMessage.consent}. Resolves with the request's id once
   * the frame is on its way. The id is deterministic per message and call (it counts as a reply
   * for the message's deterministic ids), so a re-run of the handler for the same message gets
   * the same id and sends no second request.
   * @throws ParleyError `USAGE` outside a conversation or for a bad request (the protocol's
   *   `checkConsentRequest`); `FORBIDDEN` (`details.reason: 'notMember'`) when the bot is no
   *   longer a member.
   */
  requestConsent(request: BotConsentRequest): Promise<string>;
  /**
   * Asks the conversation's owner for a form's values: sends a `formRequest` frame naming the
   * fields and the consent request whose granted receipt must cover them. The customer's client
   * sends only covered values; they run the handler with {@link BotMessage.form}. Resolves with
   * the form's id (deterministic like {@link requestConsent}'s).
   * @throws ParleyError `USAGE` outside a conversation or for a bad form; `FORBIDDEN` (`notMember`).
   */
  requestForm(request: BotFormRequest): Promise<string>;
  /**
   * The consent receipts of this conversation the bot holds (oldest first, each verified on
   * arrival), with `valid` and `withdrawn`, live like {@link members}. Empty for a one-to-one message.
   */
  consents(): readonly BotConsentEntry[];
  /**
   * The conversation's current members (the bot included), live: a member-list change that
   * arrives while the handler runs shows here at once. Empty for a one-to-one message.
   */
  members(): readonly Member[];
  /** The safety number of this conversation (compare it with the customer out of band). */
  safetyNumber(): string;
  /** The bot's own device id. */
  readonly botDeviceId: string;
  /**
   * Sends an HTTP(S) request, the handler's only way to the network: the URL's origin must be in
   * the bot's egress policy (`BotOptions.egress`, part of the measurement), else it is refused
   * with `FORBIDDEN` (`details.reason: 'egress'`, `details.host`). The enclave makes the request
   * (redirects followed only within the policy, at most 5), bounded by a time limit (default
   * 10 s, `init.timeoutMs` up to 60 s) and a response body of at most 4 MiB
   * (`PAYLOAD_TOO_LARGE`); a network failure is `TRANSPORT` (`details.reason`). The global
   * `fetch`, sockets, files and processes are not reachable from the handler. See README
   * "Egress policy and ctx.fetch".
   */
  fetch(url: string | URL, init?: EgressFetchInit): Promise<EgressResponse>;
  /** This conversation's sealed key-value store (see {@link HandlerState}). */
  readonly state: HandlerState;
}

/** The default export of a handler module. */
export type BotHandler = (message: BotMessage, ctx: BotContext) => void | Promise<void>;

