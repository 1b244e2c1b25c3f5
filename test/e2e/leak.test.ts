/**
 * THREATS R11 across packages: customers (`ParleyClient`) and a bot (`createBot`) exchange many
 * messages, both directions, each carrying a unique canary. Then the relay's side is searched:
 * its SQLite database file and its WAL, its captured pino logs (debug level), and every
 * WebSocket frame that crossed a transparent proxy in front of it (decoded: client frames are
 * masked), plus the raw bytes. 0 canary hits, and 0 hits of any private key the customers and
 * the bot held (customer keys from their stores' commits, bot keys from the enclave's
 * `unsafeTestingExposeKeys` test hook), nor of the org key's seed.
 *
 * Positive controls keep the scan honest: the frames and the database do contain the public
 * identity keys and the ciphertext traffic, and the same scanners find a planted canary and a
 * planted private key.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
import { getCrypto } from '@parley/protocol';
import { createApiKey } from '@parley/relay';
import { MemoryStore } from '@parley/client';
import { unsafeTestingRaw } from '@parley/client/testing';
import { computeMeasurement } from '@parley/bot';
import { TestingKeyTap } from '../../packages/bot/src/enclave/unsafe-testing.js';
import type { SealedKeyValueStore } from '../../packages/bot/src/enclave/sealed-store.js';
import { SecretScanner, countBytes, encodings } from '../../packages/bot/test/helpers.js';
import { FAQ_HANDLER, customer, orgKey, setupCrypto, sleep, startBot, startRelay, tempDir, until } from './helpers.js';
import { startWsTap } from './ws-tap.js';

await setupCrypto();

const CUSTOMERS = 3;
const PER_CUSTOMER = Number(process.env.PARLEY_E2E_LEAK_MESSAGES ?? 40);

/** A client store that reports every commit, so the key tap sees each private key it ever held. */
class TappedStore extends MemoryStore {
  onCommit: ((entries: [string, Uint8Array][]) => void) | undefined;
  override async setMany(entries: [string, Uint8Array][]): Promise<void> {
    await super.setMany(entries);
    this.onCommit?.(entries);
  }
}

/** The enclave's key tap, reused on a client store: every private key in its account and session records. */
function tapKeys(store: TappedStore): { dump(): Promise<Uint8Array[]> } {
  const channel = new MessageChannel();
  const tap = new TestingKeyTap(channel.port2, []);
  const view = {
    unsafeTestingEntries: () => unsafeTestingRaw(store).entries(),
    set unsafeTestingOnCommit(fn: (entries: [string, Uint8Array][]) => void) {
      store.onCommit = fn;
    },
  };
  tap.attach(view as unknown as SealedKeyValueStore);
  return { dump: () => dumpFrom(channel.port1) };
}

async function dumpFrom(port: MessageChannel['port1']): Promise<Uint8Array[]> {
  port.postMessage('dump');
  for (let i = 0; i < 500; i++) {
    const m = receiveMessageOnPort(port)?.message as { secrets: Uint8Array[]; parseFailures: number } | undefined;
    if (m) {
      assert.equal(m.parseFailures, 0);
      return m.secrets;
    }
    await sleep(10);
  }
  throw new Error('no key dump');
}

function countText(hay: string, needle: string): number {
  let n = 0;
  for (let i = hay.indexOf(needle); i !== -1; i = hay.indexOf(needle, i + 1)) n++;
  return n;
}

test(`R11: ${CUSTOMERS * PER_CUSTOMER * 2} messages with a canary, both directions: 0 canary or private-key hits in the relay DB, WAL, logs and frames`, { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  const db = join(dir, 'relay.db');
  const proxy = await startWsTap();
  t.after(() => proxy.close());
  const relay = await startRelay({ store: { sqlite: db }, origin: proxy.origin });
  proxy.target = relay.port;
  let relayClosed = false;
  t.after(() => (relayClosed ? undefined : relay.close()));

  const org = await orgKey(dir);
  const botKeys = new MessageChannel();
  t.after(() => botKeys.port1.close());
  const bot = await startBot(proxy.url, (await createApiKey(relay.store, 'bot')).key, join(dir, 'bot'), {
    oneTimePrekeys: 50,
  }, { unsafeTestingExposeKeys: botKeys.port2 });
  t.after(() => bot.close());
  await bot.setCertificate(await org.certify(bot.identityHex));
  const trust = { orgKey: org.publicKeyHex, botMeasurement: (await computeMeasurement(FAQ_HANDLER)).hex };

  const canary = `CANARY-${Buffer.from(getCrypto().randomBytes(16)).toString('hex')}`;
  const customers = await Promise.all(
    Array.from({ length: CUSTOMERS }, async () => {
      const store = new TappedStore();
      const keys = tapKeys(store);
      return { ...(await customer(proxy.url, trust, { store })), keys };
    }),
  );
  t.after(() => Promise.all(customers.map((c) => c.client.close())));
  await Promise.all(
    customers.map(async (c, i) => {
      for (let k = 0; k < PER_CUSTOMER; k++) {
        await c.client.send(bot.deviceId, k % 5 === 4 ? { note: canary, k } : `${canary} customer ${i} message ${k}`);
      }
    }),
  );
  await until(() => customers.every((c) => c.got.length >= PER_CUSTOMER), 60_000, 'every reply');
  for (const [i, c] of customers.entries()) {
    assert.ok(c.got.every((m) => m.text?.includes(canary)), 'the bot echoed the canary back (it was in the plaintext both ways)');
    assert.equal(c.got.length, PER_CUSTOMER, `customer ${i}`);
    assert.equal(c.duplicates(), 0);
  }
  await bot.idle();
  await Promise.all(customers.map((c) => c.client.idle()));

  // What the relay side holds: database + WAL (while running, and after a clean close), logs, frames.
  const files = (): Buffer[] => [db, `${db}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f));
  const whileRunning = files();
  const logs = relay.logs();
  await relay.close();
  relayClosed = true;
  const atRest = files();
  const stores = [...whileRunning, ...atRest];
  const frames = proxy.frames.map((f) => f.payload);
  const raw = [...proxy.raw.toRelay, ...proxy.raw.fromRelay].map((b) => new Uint8Array(b));

  // Sanity: the capture saw the traffic, uncompressed, and the stores are not empty.
  assert.ok(proxy.handshakes.length >= CUSTOMERS + 1, 'every connection was upgraded through the proxy');
  assert.ok(proxy.frames.every((f) => !f.compressed), 'no compressed frames: the scan sees what crossed');
  const binaryFrames = proxy.frames.filter((f) => f.opcode === 2);
  assert.ok(binaryFrames.length >= CUSTOMERS * PER_CUSTOMER * 2, `binary frames carried the envelopes (${binaryFrames.length})`);
  assert.ok(logs.includes('"event":"send"'), 'debug logs captured');

  // Secrets: every private key the customers and the bot held, and the org key's seed.
  const secrets: Uint8Array[] = [];
  for (const c of customers) secrets.push(...(await c.keys.dump()));
  secrets.push(...(await dumpFrom(botKeys.port1)));
  secrets.push(Buffer.from((JSON.parse(readFileSync(join(dir, 'org.key'), 'utf8')) as { seed: string }).seed, 'hex'));
  assert.ok(secrets.length > CUSTOMERS * 20, `collected ${secrets.length} private keys`);
  const scanner = new SecretScanner(secrets);

  const canaryForms = [canary, ...encodings(Buffer.from(canary))];
  const canaryBytes = canaryForms.map((f) => new Uint8Array(Buffer.from(f)));
  const hits = {
    dbCanary: 0, logCanary: 0, frameCanary: 0, rawCanary: 0,
    dbKeys: 0, logKeys: 0, frameKeys: 0, rawKeys: 0,
  };
  for (const b of stores) {
    for (const c of canaryBytes) hits.dbCanary += countBytes(b, c);
    hits.dbKeys += scanner.countInBytes(b) + scanner.countInText(b.toString('latin1'));
  }
  for (const f of canaryForms) hits.logCanary += countText(logs, f);
  hits.logKeys = scanner.countInText(logs) + scanner.countInBytes(new Uint8Array(Buffer.from(logs)));
  for (const b of frames) {
    for (const c of canaryBytes) hits.frameCanary += countBytes(b, c);
    hits.frameKeys += scanner.countInBytes(b) + scanner.countInText(b.toString('latin1'));
  }
  for (const b of raw) {
    for (const c of canaryBytes) hits.rawCanary += countBytes(b, c);
    hits.rawKeys += scanner.countInBytes(b);
  }
  assert.deepEqual(hits, { dbCanary: 0, logCanary: 0, frameCanary: 0, rawCanary: 0, dbKeys: 0, logKeys: 0, frameKeys: 0, rawKeys: 0 });

  // Positive controls: public identity keys are visible where they should be (frames and the
  // database hold them), and the scanners find planted secrets.
  const publicKeys = new SecretScanner([bot.identity.signingKey, ...customers.map((c) => c.client.publicIdentity.signingKey)]);
  assert.ok(frames.reduce((n, b) => n + publicKeys.countInBytes(b), 0) >= CUSTOMERS + 1, 'frames carry the public identity keys');
  // The masked direction was decoded: each customer's login (client → relay) carries its public key.
  const toRelay = proxy.frames.filter((f) => f.direction === 'toRelay').map((f) => f.payload);
  for (const c of customers) {
    const own = new SecretScanner([c.client.publicIdentity.signingKey]);
    assert.ok(toRelay.some((b) => own.countInBytes(b) > 0), 'a customer public key in the client → relay frames');
  }
  assert.ok(stores.reduce((n, b) => n + publicKeys.countInBytes(b), 0) >= CUSTOMERS + 1, 'the database holds the public identity keys');
  const planted = Buffer.concat([Buffer.from('xx'), Buffer.from(secrets[3]!), Buffer.from(canary), Buffer.from('yy')]);
  assert.equal(scanner.countInBytes(planted), 1, 'key scanner control');
  assert.equal(countBytes(planted, canaryBytes[0]!), 1, 'canary scanner control');
  assert.equal(scanner.countInText(`"${Buffer.from(secrets[5]!).toString('base64')}"`), 1, 'text key scanner control');
});
