/**
 * Conversation bench, cases 1b and 2: real `ParleyClient`s (memory stores) over the relay in
 * its own process (`conversations-server.ts`), everything on 127.0.0.1.
 *
 * - Fan-out latency: the customer (the conversation's owner) sends one message to a
 *   conversation of n members; latency = from `Conversation.send()` to the `conversationMessage`
 *   event at the last of the n − 1 other members (and, for reference, at the first). One message
 *   at a time: the next is sent once every member has the previous one. The other members are
 *   `ParleyClient`s the customer lists as bots (it pins no org key here, so it admits any device
 *   as a bot; the relay lets customers message customers): what is measured is the fan-out, not
 *   a handler.
 * - Handoff: a fresh customer (pinning the org key and the bot's measurement) in a conversation
 *   with the real bot (`createBot`, enclave worker, the relay bench's echo handler) asks for a
 *   person (`Conversation.requestHuman`); the agent claims the ticket as soon as its `ticket`
 *   event shows it (`client.tickets.claim`), the customer accepts as soon as its `handoffOffer`
 *   event shows the offer, sharing the last 5 messages, and the clock stops at the agent's
 *   `historyShared` event. Each handoff is a new customer the agent has no session with, as in a
 *   real queue: the time includes the session set-up (bundle fetch, prekey message).
 *
 * The org key, the issuer certificate, the agents' staff credentials and the bot's org
 * certificate are made here with the protocol's own signing functions: the same bytes
 * `parley-org` and `parley-issuer` hand out.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  encodeStaffCredential,
  fromHex,
  generateIssuerKey,
  generateOrgKey,
  signIssuerCertificate,
  signOrgCertificate,
  signStaffCertificate,
  toHex,
  type StaffRole,
} from '@parley/protocol';
import { computeMeasurement, createBot, type Bot, type BotLogger } from '@parley/bot';
import { MemoryStore, ParleyClient, type Conversation, type ParleyClientOptions } from '@parley/client';
import { sleep } from './relay/common.js';
import { TEXT } from './conversations-cpu.js';

const HOUR = 3_600_000;

/** An organisation for the run: its public key, and staff credentials for any device. */
export interface BenchOrg {
  readonly publicKey: Uint8Array;
  readonly publicKeyHex: string;
  credential(client: ParleyClient, name: string, roles: readonly StaffRole[]): Uint8Array;
  /** An org certificate, role `bot`, for the identity `identityHex` (signingKey ‖ dhKey, as `bot.identityHex`). */
  botCertificate(identityHex: string, label: string): Uint8Array;
}

export function benchOrg(): BenchOrg {
  const org = generateOrgKey();
  const issuer = generateIssuerKey();
  const issuerCertificate = signIssuerCertificate(org.seed, {
    issuerKey: issuer.publicKey, name: 'Bench issuer', policy: { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR }, expiresAt: Date.now() + 24 * HOUR,
  });
  let person = 0;
  return {
    publicKey: org.publicKey,
    publicKeyHex: toHex(org.publicKey),
    credential(client, name, roles) {
      const now = Date.now();
      return encodeStaffCredential(issuerCertificate, signStaffCertificate(issuer.seed, {
        ...client.publicIdentity, personId: `bench-${++person}`, displayName: name, roles: [...roles], issuedAt: now, expiresAt: now + 6 * HOUR,
        serial: randomBytes(16),
      }));
    },
    botCertificate(identityHex, label) {
      const id = fromHex(identityHex);
      return signOrgCertificate(org.seed, { role: 'bot', label, signingKey: id.subarray(0, 32), dhKey: id.subarray(32), expiresAt: Date.now() + 24 * HOUR });
    },
  };
}

/** Errors the clients reported (`error` events), by code: printed with the report. */
export const clientErrors: Record<string, number> = {};
const clients: ParleyClient[] = [];

/** Where `conversationMessage` events go while a latency run listens. */
let onArrival: ((client: ParleyClient, conversation: string, id: string) => void) | undefined;

/** Says nothing: the latency case's customer pins no org key on purpose (see the module comment). */
const quiet: NonNullable<ParleyClientOptions['logger']> = {};

/**
 * A connected client: a customer pinning `trust` (the org key, and the bot's measurement when
 * given; nothing when `trust` is undefined), or, with `staff`, a signed-in staff device.
 */
export async function benchClient(
  url: string,
  org: BenchOrg,
  o: { staff?: { name: string; roles: readonly StaffRole[] }; trust?: ParleyClientOptions['trust'] } = {},
): Promise<ParleyClient> {
  const client = await ParleyClient.create({
    relayUrl: url,
    store: new MemoryStore(),
    logger: quiet,
    ...(o.staff ? { trust: { orgKey: org.publicKey, requireCertificate: 'none' } } : o.trust ? { trust: o.trust } : {}),
  });
  clients.push(client);
  client.on('error', ({ error }) => {
    const key = error.details?.reason === undefined ? error.code : `${error.code}/${String(error.details.reason)}`;
    clientErrors[key] = (clientErrors[key] ?? 0) + 1;
  });
  // Listening from the start: a client keeps conversation frames in its inbox until the app listens.
  client.on('conversationMessage', (m) => onArrival?.(client, m.conversation, m.id));
  // A staff device presents its credential at its first login (setting it later logs in again).
  if (o.staff) await client.setStaffCredential(org.credential(client, o.staff.name, o.staff.roles));
  await client.connect();
  return client;
}

const ECHO_HANDLER = new URL('./relay/echo-handler.ts', import.meta.url);

/** Errors and warnings of the bot once certified (none expected): printed with the report. */
export const botProblems: string[] = [];
/** Until `setCertificate`, the bot rightly warns that it has no org certificate. */
let botCertified = false;
const botLogger: BotLogger = {
  info: () => undefined,
  warn: (_obj, msg) => void (botCertified && botProblems.push(`warn: ${msg ?? ''}`)),
  error: (_obj, msg) => void botProblems.push(`error: ${msg ?? ''}`),
};

/** The real bot (enclave worker, echo handler), certified by `org`; and the measurement customers pin. */
export async function benchBot(url: string, apiKey: string, org: BenchOrg, dir: string): Promise<{ bot: Bot; measurement: string }> {
  const bot = await createBot({ relayUrl: url, apiKey, handler: ECHO_HANDLER, stateDir: join(dir, 'bot'), oneTimePrekeys: 100, logger: botLogger });
  await bot.setCertificate(org.botCertificate(bot.identityHex, 'support'));
  botCertified = true;
  return { bot, measurement: (await computeMeasurement(ECHO_HANDLER)).hex };
}

export async function closeClients(): Promise<void> {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
}

/** Resolves when `cond` holds (polled every 2 ms); rejects after `ms`. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(2);
  }
}

// ---- fan-out latency ----------------------------------------------------------------------------

export interface FanoutLatency {
  /** Send → the last member's `conversationMessage`, ms, one per message. */
  readonly last: number[];
  /** Send → the first member's, ms. */
  readonly first: number[];
}

/** One conversation: the customer and `others` (staff devices); the members know it before this resolves. */
export async function benchConversation(customer: ParleyClient, others: readonly ParleyClient[], timeoutMs: number): Promise<Conversation> {
  const conv = await customer.startConversation(others.map((o) => o.deviceId));
  await waitFor(() => others.every((o) => o.conversation(conv.id) !== undefined), timeoutMs, 'every member to learn the conversation');
  return conv;
}

/**
 * Sends `warmup` untimed and then `count` timed messages from the customer to `conv`, one at a
 * time, each once every other member has the previous one.
 */
export async function measureFanoutLatency(
  conv: Conversation,
  others: readonly ParleyClient[],
  o: { warmup: number; count: number; timeoutMs: number },
): Promise<FanoutLatency> {
  // Arrival times by message id; a member may have it before the sender's send() resolves.
  const arrivals = new Map<string, number[]>();
  onArrival = (client, conversation, id) => {
    if (conversation !== conv.id || !others.includes(client)) return;
    const times = arrivals.get(id) ?? [];
    times.push(performance.now());
    arrivals.set(id, times);
  };
  const result: FanoutLatency = { last: [], first: [] };
  try {
    for (let i = 0; i < o.warmup + o.count; i++) {
      const t0 = performance.now();
      const { id } = await conv.send(TEXT);
      await waitFor(() => (arrivals.get(id)?.length ?? 0) >= others.length, o.timeoutMs, `message ${i + 1} at all ${others.length} members`);
      const times = arrivals.get(id)!;
      arrivals.delete(id);
      if (i >= o.warmup) {
        result.last.push(Math.max(...times) - t0);
        result.first.push(Math.min(...times) - t0);
      }
    }
  } finally {
    onArrival = undefined;
  }
  return result;
}

// ---- handoff ------------------------------------------------------------------------------------

/** Milliseconds from `requestHuman()` to each step of one handoff. */
export interface HandoffTiming {
  /** The agent's `ticket` event (change `opened`). */
  readonly ticketAtAgent: number;
  /** The agent's claim resolved (relay claim + join frame sent). */
  readonly claimed: number;
  /** The customer's `handoffOffer` event (join frame checked against the relay's claim). */
  readonly offerAtCustomer: number;
  /** The customer's `acceptAgent` resolved (claim checked again, members frame and history bundle sent). */
  readonly accepted: number;
  /** The agent's `conversationJoined` event (the new member list applied). */
  readonly joinedAtAgent: number;
  /** The agent's `historyShared` event: the total. */
  readonly historyAtAgent: number;
}

/** Messages the customer sends before the handoff (each answered by the bot); the customer shares the last {@link SHARED} of the conversation. */
export const BEFORE = 3;
export const SHARED = 5;

/**
 * One handoff, fully automated: a new customer, a conversation with the bot, {@link BEFORE}
 * messages and their answers, then `requestHuman` → claim → consent (last {@link SHARED}) →
 * history at `agent`; then the customer closes the ticket.
 */
export async function oneHandoff(
  url: string,
  org: BenchOrg,
  bot: { deviceId: string; measurement: string },
  agent: ParleyClient,
  queue: string,
  timeoutMs: number,
): Promise<HandoffTiming> {
  const customer = await benchClient(url, org, { trust: { orgKey: org.publicKey, botMeasurement: bot.measurement } });
  try {
    const conv = await customer.startConversation(bot.deviceId);
    for (let i = 0; i < BEFORE; i++) await conv.send(`before the handoff ${i + 1}`);
    // Each message and the bot's answer to it.
    await waitFor(() => conv.history().length >= 2 * BEFORE, timeoutMs, 'the bot\'s answers');

    const stamps: Partial<Record<keyof HandoffTiming, number>> = {};
    let failure: unknown;
    const offs = [
      agent.on('ticket', ({ ticket, change }) => {
        if (change !== 'opened' || ticket.customer !== customer.deviceId) return;
        stamps.ticketAtAgent = performance.now();
        agent.tickets.claim(ticket.id).then(() => void (stamps.claimed = performance.now()), (e: unknown) => void (failure ??= e));
      }),
      customer.on('handoffOffer', (offer) => {
        if (offer.conversation !== conv.id) return;
        stamps.offerAtCustomer = performance.now();
        conv.acceptAgent(offer, { history: { last: SHARED }, bot: 'stay' }).then(() => void (stamps.accepted = performance.now()), (e: unknown) => void (failure ??= e));
      }),
      agent.on('conversationJoined', (j) => {
        if (j.conversation === conv.id) stamps.joinedAtAgent = performance.now();
      }),
      agent.on('historyShared', (h) => {
        if (h.conversation !== conv.id) return;
        if (h.items.length !== SHARED) failure ??= new Error(`the agent got ${h.items.length} shared messages, not ${SHARED}`);
        stamps.historyAtAgent = performance.now();
      }),
    ];
    try {
      const t0 = performance.now();
      await conv.requestHuman({ queue, reason: 'bench' });
      await waitFor(() => stamps.historyAtAgent !== undefined || failure !== undefined, timeoutMs, 'the shared history at the agent');
      if (failure) throw failure;
      await waitFor(() => stamps.claimed !== undefined && stamps.accepted !== undefined, timeoutMs, 'the claim and the acceptance to resolve');
      const at = (k: keyof HandoffTiming): number => stamps[k]! - t0;
      const timing: HandoffTiming = {
        ticketAtAgent: at('ticketAtAgent'), claimed: at('claimed'), offerAtCustomer: at('offerAtCustomer'),
        accepted: at('accepted'), joinedAtAgent: at('joinedAtAgent'), historyAtAgent: at('historyAtAgent'),
      };
      // Ends the ticket and takes the agent out of the conversation.
      await conv.close();
      return timing;
    } finally {
      for (const off of offs) off();
    }
  } finally {
    await customer.idle().catch(() => undefined);
    await customer.close();
    clients.splice(clients.indexOf(customer), 1);
  }
}
