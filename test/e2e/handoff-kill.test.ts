/**
 * Exactly once across relay crashes during a handoff (issue 13; THREATS R8 for conversations):
 * a customer (`ParleyClient`, pinning the org key and the bot's measurement), the real bot
 * (`createBot`, FAQ handler: it answers every member's message in the conversation) and agent A
 * (`ParleyClient` with a staff credential), over the real `parley-relay serve` with the org key,
 * in a child process on a SQLite file. While the handoff runs, the relay is SIGKILLed and
 * restarted on the same database and port three times:
 *
 * 1. the moment the customer, holding A's join frame, asks the relay for A's published staff
 *    credential (a proxy in front of the customer reads its WebSocket frames and kills the relay
 *    before that call reaches it): the join must survive and be offered after the restart;
 * 2. while the customer accepts A (the members frame to the bot and A and the history bundle to A
 *    leaving), the customer's first three-way messages right behind them;
 * 3. in the middle of a three-way exchange (the customer and A writing, the bot answering each).
 *
 * Afterwards every conversation message reached every member it was sent to exactly once
 * (`conversationMessage` events counted per member per message id: all 1, none missing, none
 * extra), the bot answered each message once (one reply id per message, the same at every
 * member), the history bundle reached A exactly once with the last 5 messages the customer chose,
 * and nothing came as a plain `message`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import {
  encodeStaffCredential,
  fromHex,
  generateIssuerKey,
  generateOrgKey,
  isParleyError,
  signIssuerCertificate,
  signOrgCertificate,
  signStaffCertificate,
  toHex,
  type StaffRole,
} from '@parley/protocol';
import { createApiKey, SqliteStore } from '@parley/relay';
import { computeMeasurement } from '@parley/bot';
import { MemoryStore, ParleyClient, type Conversation, type HandoffOffer, type TrustOptions } from '@parley/client';
import { FAQ_HANDLER, FAST, setupCrypto, sleep, startBot, tempDir, until } from './helpers.js';

const root = join(import.meta.dirname, '..', '..');
const relayBin = join(root, 'packages', 'relay', 'src', 'bin.ts');
const HOUR = 3_600_000;
/** Messages the customer and A each send in the three-way exchange of step 3. */
const EXCHANGE = 5;

await setupCrypto();
const org = generateOrgKey();
const issuerKey = generateIssuerKey();
const issuerCertificate = signIssuerCertificate(org.seed, {
  issuerKey: issuerKey.publicKey, name: 'Acme support', policy: { roles: ['agent', 'supervisor'], maxLifetimeMs: 12 * HOUR }, expiresAt: Date.now() + 24 * HOUR,
});

/** `parley-relay serve` on `db` and `port` (0 = any), with the org key; resolves once it listens. Retries a busy port. */
async function spawnRelay(db: string, port: number): Promise<{ child: ChildProcess; url: string }> {
  const args = [
    '--import', 'tsx', relayBin, 'serve', '--db', db, '--port', String(port), '--org-key', toHex(org.publicKey), '--log-level', 'silent',
    '--limit', 'eventsPerSecond=100000', '--limit', 'eventBurst=100000', '--limit', 'connectBurst=1000', '--limit', 'connectsPerSecondPerAddress=1000',
  ];
  for (let attempt = 1; ; attempt++) {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => void (stderr += d.toString()));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`relay exited early (${code}): ${stderr.slice(0, 500)}`)));
      });
      return { child, url: /listening on (\S+)/.exec(line)![1]! };
    } catch (e) {
      if (attempt >= 10 || !/EADDRINUSE|in use/i.test(String(e))) throw e;
      await sleep(100);
    }
  }
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** A member's device and what reached its app. */
interface Device {
  readonly name: string;
  readonly client: ParleyClient;
  /** `conversationMessage` events per message id, and each message's sender and text. */
  readonly got: Map<string, number>;
  readonly texts: Map<string, { from: string; text: string }>;
  /** `historyShared` events: the shared message ids of each. */
  readonly histories: string[][];
  /** Plain `message` events (none expected: every message here is a conversation message). */
  plain: number;
  readonly errors: string[];
}

async function device(url: string, name: string, o: { trust: TrustOptions; staff?: readonly StaffRole[]; origin?: string }): Promise<Device> {
  const client = await ParleyClient.create({ relayUrl: url, store: new MemoryStore(), trust: o.trust, transport: { ...FAST, ...(o.origin ? { origin: o.origin } : {}) } });
  const d: Device = { name, client, got: new Map(), texts: new Map(), histories: [], plain: 0, errors: [] };
  client.on('conversationMessage', (m) => {
    d.got.set(m.id, (d.got.get(m.id) ?? 0) + 1);
    d.texts.set(m.id, { from: m.from, text: String(m.content.text) });
  });
  client.on('historyShared', (h) => void d.histories.push(h.items.map((i) => i.id)));
  client.on('message', () => void d.plain++);
  client.on('error', (e) => void d.errors.push(`${e.error.code}${e.error.details?.reason ? `/${String(e.error.details.reason)}` : ''}${process.env.PARLEY_E2E_DEBUG ? ` ${e.error.message} peer ${e.peer?.slice(0, 6)} id ${e.id} at ${Date.now()}` : ''}`));
  if (o.staff) {
    // Presented at the first login (setting it later logs in again).
    const now = Date.now();
    await client.setStaffCredential(encodeStaffCredential(issuerCertificate, signStaffCertificate(issuerKey.seed, {
      ...client.publicIdentity, personId: `p-${name.toLowerCase().replace(/\W/g, '')}`, displayName: name, roles: [...o.staff], issuedAt: now, expiresAt: now + 6 * HOUR, serial: randomBytes(16),
    })));
  }
  await client.connect();
  return d;
}

/**
 * A TCP proxy in front of the relay for one client. It reads the client's WebSocket frames (RFC
 * 6455: client frames are masked) and forwards them. Once armed, the first frame `trip` picks is
 * held back with everything after it on that connection, and `onTrip` runs: the relay never sees
 * that call. Later connections (after the client reconnects) pass untouched.
 */
async function startTripwire(relayPort: number): Promise<{ url: string; arm(trip: (frame: string) => boolean, onTrip: () => void): void; tripped(): boolean; close(): void }> {
  let armed: { trip: (frame: string) => boolean; onTrip: () => void } | undefined;
  let tripped = false;
  const sockets = new Set<Socket>();
  const server = createServer((down) => {
    const up = connect(relayPort, '127.0.0.1');
    sockets.add(down).add(up);
    const end = (): void => void (down.destroy(), up.destroy());
    up.on('data', (d) => down.write(d)).on('error', end).on('close', end);
    down.on('error', end).on('close', end);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let holding = false;
    down.on('data', (chunk: Buffer) => {
      if (holding) return;
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const at = buf.indexOf('\r\n\r\n');
        if (at < 0) return;
        up.write(buf.subarray(0, at + 4));
        buf = buf.subarray(at + 4);
        upgraded = true;
      }
      for (;;) {
        if (buf.length < 2) return;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        const masked = (buf[1]! & 0x80) !== 0;
        const mask = off;
        if (masked) off += 4;
        if (buf.length < off + len) return;
        const payload = Buffer.from(buf.subarray(off, off + len));
        if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= buf[mask + (i & 3)]!;
        if (armed?.trip(payload.toString('latin1'))) {
          const { onTrip } = armed;
          armed = undefined;
          tripped = true;
          holding = true;
          onTrip();
          return;
        }
        up.write(buf.subarray(0, off + len));
        buf = buf.subarray(off + len);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    arm: (trip, onTrip) => {
      armed = { trip, onTrip };
      tripped = false;
    },
    tripped: () => tripped,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** Retries `step` while the relay is away (`TRANSPORT`), as an app would; anything else fails the test. */
async function whileRelayAway<T>(step: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (e) {
      if (attempt >= 100 || !isParleyError(e, 'TRANSPORT')) throw e;
      await sleep(100);
    }
  }
}

test('a handoff survives three relay SIGKILLs (the customer fetching the claimant\'s credential, the acceptance, a three-way exchange): every message reaches every member exactly once, the history once', { timeout: 60_000 }, async (t) => {
  const T0 = Date.now();
  const phase = (what: string): void => void (process.env.PARLEY_E2E_DEBUG && console.log(`# ${Date.now() - T0} ms: ${what}`));
  const dir = tempDir();
  const db = join(dir, 'relay.db');
  // The bot's API key, created with the relay's own code on the relay's database file.
  const admin = new SqliteStore(db);
  const { key } = await createApiKey(admin, 'bot');
  await admin.close();
  let relay = await spawnRelay(db, 0);
  const port = Number(new URL(relay.url).port);
  const url = relay.url;
  t.after(() => kill(relay.child));
  const restart = async (downMs: number): Promise<void> => {
    await kill(relay.child);
    if (downMs > 0) await sleep(downMs);
    relay = await spawnRelay(db, port);
  };

  phase('relay up');
  const bot = await startBot(url, key, join(dir, 'bot'), { oneTimePrekeys: 20 });
  t.after(() => bot.close());
  const id = fromHex(bot.identityHex);
  await bot.setCertificate(signOrgCertificate(org.seed, { role: 'bot', label: 'support', signingKey: id.subarray(0, 32), dhKey: id.subarray(32), expiresAt: Date.now() + 24 * HOUR }));
  const botMeasurement = (await computeMeasurement(FAQ_HANDLER)).hex;

  phase('bot up');
  // The customer reaches the relay through a tripwire, so kills 1 and 2 land at a chosen call.
  const wire = await startTripwire(port);
  t.after(() => wire.close());
  const customer = await device(wire.url, 'Customer', { trust: { orgKey: org.publicKey, botMeasurement }, origin: new URL(url).origin });
  const agent = await device(url, 'Ada', { trust: { orgKey: org.publicKey, requireCertificate: 'none' }, staff: ['agent'] });
  const people = [customer, agent];
  t.after(() => Promise.allSettled(people.map((d) => d.client.close())));

  /** Every message the customer and A sent: id, text, and the people it was sent to beside the bot. */
  const sent: { id: string; text: string; from: Device; to: Device[] }[] = [];
  const send = async (from: Device, conv: Conversation, to: Device[], text: string): Promise<void> => {
    const r = await conv.send(text);
    assert.deepEqual(r.failed, [], `${text}: encrypted to every member`);
    sent.push({ id: r.id, text, from, to });
  };
  /** The bot's answers `d` got, by the text they answer (the FAQ handler echoes: `echo:<text>`). */
  const answers = (d: Device): Map<string, string[]> => {
    const out = new Map<string, string[]>();
    for (const [mid, m] of d.texts) {
      if (m.from !== bot.deviceId) continue;
      const asked = m.text.replace(/^echo:/, '');
      out.set(asked, [...(out.get(asked) ?? []), mid]);
    }
    return out;
  };
  /** Who gets the bot's answer to `s`: the people in the conversation then (A from the acceptance on). */
  const answerTo = (s: (typeof sent)[number]): Device[] => (s.text.startsWith('before') ? [customer] : people);
  /** Every message at every person it was sent to, and the bot's answer to each at every person then in the conversation. */
  const arrived = (): boolean =>
    sent.every((s) => s.to.every((d) => d.got.has(s.id))) && sent.every((s) => answerTo(s).every((d) => answers(d).has(s.text)));

  phase('clients up');
  // Before the handoff: the customer and the bot.
  const conv = await customer.client.startConversation(bot.deviceId);
  for (let i = 0; i < 3; i++) await send(customer, conv, [], `before ${i}`);
  await until(arrived, 15_000, 'the bot\'s answers before the handoff');
  const before = conv.history().map((m) => m.id);
  assert.equal(before.length, 6);

  phase('before-messages answered');
  // The customer asks for a person; A claims. Kill 1: the customer, holding A's join frame, asks
  // the relay for A's statements (it has never seen A), and the relay dies before that call arrives.
  const offers: HandoffOffer[] = [];
  customer.client.on('handoffOffer', (o) => void offers.push(o));
  const ticket = await conv.requestHuman({ queue: 'support', reason: 'asks for a person' });
  let killed1: Promise<void> | undefined;
  wire.arm((frame) => frame.includes('"fetchIdentity"'), () => void (killed1 = restart(100)));
  // The claim's join frame is in A's outbox before the relay can die; if the relay died before
  // acking it, A's client sends it after the restart (the claim itself was acked).
  await agent.client.tickets.claim(ticket.id).catch((e: unknown) => {
    if (!isParleyError(e, 'TRANSPORT')) throw e;
  });
  await until(() => wire.tripped(), 10_000, 'the customer asking the relay for A\'s statements');
  await killed1;

  phase('kill 1 done');
  // The offer arrives once the relay is back (the customer checks the claim there). Kill 2 as the
  // acceptance's member list leaves for A (before the relay has it); the history bundle and the
  // customer's first three-way messages queue behind it.
  await until(() => offers.length > 0, 15_000, 'the handoff offer at the customer').catch((e: unknown) => {
    console.log({ customer: customer.errors, agent: agent.errors, pending: [customer.client.pendingCount, agent.client.pendingCount], connected: [customer.client.connected, agent.client.connected] });
    throw e;
  });
  assert.deepEqual({ agent: offers[0]!.agent.deviceId, ticket: offers[0]!.ticket }, { agent: agent.client.deviceId, ticket: ticket.id });
  let killed2: Promise<void> | undefined;
  wire.arm((frame) => frame.includes('"send"') && frame.includes(agent.client.deviceId), () => void (killed2 = restart(200)));
  await whileRelayAway(() => conv.acceptAgent(offers[0]!, { history: { last: 5 }, bot: 'stay' }));
  for (let i = 0; i < 2; i++) await send(customer, conv, [agent], `right after accepting ${i}`);
  await until(() => wire.tripped(), 10_000, 'the member list leaving for A');
  await killed2;

  phase('accepted, kill 2 done');
  await until(() => agent.client.conversation(conv.id) !== undefined && agent.histories.length > 0, 15_000, 'A joined and has the history');
  const agentConv = agent.client.conversation(conv.id)!;
  // A's first message starts its session with the bot (a bundle from the relay, which is up).
  await send(agent, agentConv, [customer], 'A says hello');
  await until(arrived, 15_000, 'the first three-way messages and their answers');

  phase('A joined, hello answered');
  // The three-way exchange; kill 3 in its middle.
  const exchange = async (d: Device, c: Conversation, to: Device[]): Promise<void> => {
    for (let i = 0; i < EXCHANGE; i++) {
      await send(d, c, to, `${d.name} three-way ${i}`);
      await sleep(20 + ((i * 37) % 40));
    }
  };
  const sending = Promise.all([exchange(customer, conv, [agent]), exchange(agent, agentConv, [customer])]);
  await sleep(100);
  await restart(150);
  await sending;

  phase('exchange sent, kill 3 done');
  await until(arrived, 20_000, 'every message and every answer at every member').catch((e: unknown) => {
    const missing = sent.flatMap((s) => s.to.filter((d) => !d.got.has(s.id)).map((d) => `${s.text}→${d.name}`));
    const unanswered = sent.flatMap((s) => answerTo(s).filter((d) => !answers(d).has(s.text)).map((d) => `${s.text}@${d.name}`));
    console.log({ missing, unanswered, errors: people.map((d) => [d.name, d.errors]), bot: bot.stats });
    throw e;
  });
  phase('all arrived');
  await sleep(500); // a late duplicate would show up here

  // Exactly once: every (member, message) count is 1; nobody got a message not sent to it.
  for (const d of people) {
    const expected = [
      ...sent.filter((s) => s.to.includes(d)).map((s) => s.id),
      ...sent.filter((s) => answerTo(s).includes(d)).flatMap((s) => answers(d).get(s.text) ?? []),
    ].sort();
    assert.deepEqual([...d.got.keys()].sort(), expected, `${d.name} got exactly the messages sent to it and the bot's answers`);
    assert.deepEqual([...d.got.entries()].filter(([, n]) => n !== 1), [], `${d.name}: every message once`);
    assert.equal(d.plain, 0, `${d.name}: no plain message events`);
  }
  // The bot answered each message once: one answer id, the same at every person who got it.
  for (const s of sent) {
    const ids = new Set(answerTo(s).flatMap((d) => answers(d).get(s.text) ?? []));
    assert.equal(ids.size, 1, `one answer to "${s.text}"`);
  }
  assert.equal(sent.length, 3 + 2 + 1 + 2 * EXCHANGE);
  // The history bundle: once, with the last 5 of the 6 messages before the acceptance.
  assert.deepEqual(agent.histories, [before.slice(-5)], 'the history bundle reached A once, with the chosen messages');
  assert.deepEqual(customer.histories, [], 'nothing shared with the customer');
  assert.equal(bot.stats.crashes, 0);
});
