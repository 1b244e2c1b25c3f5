/**
 * Rollback of the bot's sealed state (issue 10, Low 12; docs/threats.md B10).
 *
 * The host rolls the state folder back to a copy made before a message with a side effect (a
 * refund) and hands the message's envelope in again. Before issue 10 the handler ran again with
 * `redelivered: false` and the refund ran twice. Now the enclave refuses the older state at start
 * (`STORAGE_INTEGRITY`, `details.reason: 'rolledBack'`): before it let the handler run, it had
 * recorded the state's version in the rollback anchor beside the folder. The newest state starts
 * and the envelope is a duplicate; an older copy restored on purpose starts once its anchor is
 * deleted (logged), with the consequence the error message names.
 *
 * Per-record rollback (one record swapped for an older copy, one removed, a deleted one put back)
 * is caught by the state digest, anchor or not. What is not caught, said here as in the README:
 * the folder rolled back together with its anchor (the host controls both), or without an anchor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { getCrypto, isParleyError } from '@parley/protocol';
import { SealedKeyValueStore, type PersistFn } from '../src/enclave/sealed-store.js';
import { RollbackAnchor } from '../src/enclave/secret.js';
import { deriveAnchorKey } from '../src/enclave/seal.js';
import type { SealedRecord } from '../src/rpc/messages.js';
import type { TestingBot } from '../src/testing.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { setupCrypto, sleep, tempDir, waitFor } from './helpers.js';

await setupCrypto();

const REFUND_HANDLER = new URL('./fixtures/refund-handler.ts', import.meta.url);

test('B10: a state folder rolled back under a handled message is refused: the refund does not run again', { timeout: 120_000 }, async (t) => {
  const dir = tempDir(t);
  const relay = await startRelay();
  t.after(() => relay.close());
  // The payment service the handler calls (through ctx.fetch, under the bot's egress policy).
  const refunded: string[] = [];
  const payments = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      refunded.push(body);
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => payments.listen(0, '127.0.0.1', resolve));
  t.after(() => payments.close());
  const refunds = `http://127.0.0.1:${(payments.address() as AddressInfo).port}/refund`;
  const stateDir = join(dir, 'bot');
  const delivered = new Map<string, { from: string; id: string; envelope: Uint8Array }>();
  const tap = (direction: 'toEnclave' | 'fromEnclave', m: unknown): void => {
    const call = m as { method?: string; params?: { from: string; id: string; envelope: Uint8Array } };
    if (direction === 'toEnclave' && call.method === 'deliver' && call.params) delivered.set(call.params.id, { ...call.params, envelope: call.params.envelope.slice() });
  };
  const start = (): Promise<{ bot: TestingBot; logger: { text(): string } }> => startBot(relay, dir, { handler: REFUND_HANDLER, egress: [new URL(refunds).origin], unsafeTestingTap: tap });
  const refundLines = (): string[] => [...refunded];

  const customer = await Customer.connect(relay.url);
  t.after(() => customer.close());
  let { bot } = await start();
  await customer.send(bot.deviceId, 'hello');
  await waitFor(() => customer.replies.length === 1, 20_000, 'first reply');
  await bot.idle();
  await bot.close();
  cpSync(stateDir, join(dir, 'copy-before-refund'), { recursive: true });

  ({ bot } = await start());
  const refundId = await customer.send(bot.deviceId, `refund ${refunds}`);
  await waitFor(() => customer.replies.length === 2, 20_000, 'refund reply');
  await bot.idle();
  await bot.close();
  assert.deepEqual(refundLines(), [`${refundId} false`]);
  const envelope = delivered.get(refundId)!;
  assert.ok(envelope, 'the host kept the envelope (as a hostile host would)');
  cpSync(stateDir, join(dir, 'newest'), { recursive: true });

  // The rollback: the folder before the refund, then the refund's envelope handed in again.
  rmSync(stateDir, { recursive: true });
  cpSync(join(dir, 'copy-before-refund'), stateDir, { recursive: true });
  let refusal: unknown;
  try {
    const rolledBack = await start();
    // (Before issue 10 the bot started, and this ran the handler again with redelivered: false.)
    await rolledBack.bot.supervisor.call('deliver', envelope).catch(() => undefined);
    await sleep(1000);
    await rolledBack.bot.close();
  } catch (e) {
    refusal = e;
  }
  assert.deepEqual(refundLines(), [`${refundId} false`], 'the refund ran once');
  assert.ok(isParleyError(refusal, 'STORAGE_INTEGRITY') && refusal.details?.reason === 'rolledBack', `refused as rolled back: ${String(refusal)}`);
  assert.ok(refusal.message.endsWith(`${stateDir}.anchor`), refusal.message);
  assert.match(refusal.message, /older copy/);

  // The newest folder starts, and the envelope is a duplicate.
  rmSync(stateDir, { recursive: true });
  cpSync(join(dir, 'newest'), stateDir, { recursive: true });
  ({ bot } = await start());
  assert.deepEqual(await bot.supervisor.call('deliver', envelope), { status: { type: 'duplicate' } });
  await bot.close();

  // An older copy restored on purpose: the operator deletes the anchor; the start is logged, and
  // from then on (as the refusal said) handled messages can run again.
  rmSync(stateDir, { recursive: true });
  cpSync(join(dir, 'copy-before-refund'), stateDir, { recursive: true });
  rmSync(`${stateDir}.anchor`);
  const restored = await start();
  assert.match(restored.logger.text(), /"level":"warn","event":"sealing.anchorMissing"/);
  await restored.bot.close();
  assert.ok(existsSync(`${stateDir}.anchor`), 'a new anchor was written');
});

/** A store over an in-memory host that keeps every acked batch, so a test can rebuild any moment. */
function host(): { persist: PersistFn; at: () => SealedRecord[] } {
  const state = new Map<string, Uint8Array>();
  return {
    persist: async (puts, dels) => {
      for (const p of puts) state.set(p.key, p.blob);
      for (const d of dels) state.delete(d);
    },
    at: () => [...state].map(([key, blob]) => ({ key, blob })),
  };
}

test('B10: records rolled back, removed or put back one at a time are refused (the state digest)', async () => {
  const secret = getCrypto().randomBytes(32);
  const h = host();
  const store = SealedKeyValueStore.open(secret, [], h.persist);
  await store.setMany([['account', new Uint8Array([1])], ['session/p/1', new Uint8Array([1])], ['seen/p/0', new Uint8Array([1])], ['inbox/1', new Uint8Array([1])]]);
  const early = new Map(h.at().map((r) => [r.key, r.blob]));
  await store.transaction(async () => {
    await store.setMany([['session/p/1', new Uint8Array([2])], ['seen/p/0', new Uint8Array([2])]]);
    await store.delMany(['inbox/1']);
  });
  const now = h.at();
  const reopen = (records: SealedRecord[]) => SealedKeyValueStore.open(secret, records, h.persist);
  assert.equal(await reopen(now).get('session/p/1').then((v) => v?.[0]), 2, 'the untouched state opens');
  const inconsistent = (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY') && e.details?.reason === 'inconsistent';
  // One session record rolled back to its older sealed copy (it authenticates on its own).
  assert.throws(() => reopen(now.map((r) => (r.key === 'session/p/1' ? { key: r.key, blob: early.get(r.key)! } : r))), inconsistent);
  // One record removed (the dedupe record: the host would make a handled message look new).
  assert.throws(() => reopen(now.filter((r) => r.key !== 'seen/p/0')), inconsistent);
  // A consumed message put back.
  assert.throws(() => reopen([...now, { key: 'inbox/1', blob: early.get('inbox/1')! }]), inconsistent);
  // The whole state rolled back consistently opens: without an anchor, that is not detected.
  assert.ok(reopen([...early].map(([key, blob]) => ({ key, blob }))));
});

test('B10: a commit that queues a message for the handler resolves only once the anchor holds its version; an older state is refused', async () => {
  const secret = getCrypto().randomBytes(32);
  const dir = tempDir();
  const path = join(dir, 'anchor');
  const h = host();
  const anchor = await RollbackAnchor.open(path, deriveAnchorKey(secret));
  const store = SealedKeyValueStore.open(secret, [], h.persist, { anchor });
  assert.equal(store.opening.anchor, 'new');
  await store.setMany([['account', new Uint8Array([1])]]);
  await store.finishOpen();
  const beforeMessage = h.at();
  await store.setMany([['inbox/1', new Uint8Array([1])]]); // queues a message: the anchor moves first
  const afterMessage = h.at();
  const read = await RollbackAnchor.open(path, deriveAnchorKey(secret));
  assert.equal(read.recorded?.version, 2);
  // A plain commit does not wait for the anchor (it does not gate a handler run).
  await store.setMany([['seen/p/0', new Uint8Array([1])]]);
  assert.equal((await RollbackAnchor.open(path, deriveAnchorKey(secret))).recorded?.version, 2);

  const open = async (records: SealedRecord[]) => SealedKeyValueStore.open(secret, records, h.persist, { anchor: await RollbackAnchor.open(path, deriveAnchorKey(secret)) });
  assert.equal((await open(afterMessage)).opening.anchor, 'ok');
  assert.equal((await open(h.at())).opening.anchor, 'ok');
  await assert.rejects(open(beforeMessage), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY') && e.details?.reason === 'rolledBack' && e.details.anchorVersion === 2);
  // Another secret cannot read (or forge) the anchor.
  await assert.rejects(RollbackAnchor.open(path, deriveAnchorKey(getCrypto().randomBytes(32))), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY') && e.details?.reason === 'anchorDamaged');
  // Another state's anchor: refused for an existing state, replaced for a new one.
  const other = SealedKeyValueStore.open(secret, [], host().persist, { anchor: await RollbackAnchor.open(path, deriveAnchorKey(secret)) });
  assert.equal(other.opening.anchor, 'replaced');
  const otherHost = host();
  const third = SealedKeyValueStore.open(secret, [], otherHost.persist);
  await third.setMany([['account', new Uint8Array([3])]]);
  await assert.rejects(open(otherHost.at()), (e: unknown) => isParleyError(e, 'STORAGE_INTEGRITY') && e.details?.reason === 'anchorForeign');
});
