/**
 * docs/threats.md R8 and (c) "Relay durability": the relay is SIGKILLed at random points while
 * senders wait for acks and the recipient is receiving and acking; after a restart on the same
 * SQLite file every message ever acked to its sender is delivered. 0 lost; after the client's
 * (from, id) dedupe, 0 duplicates.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { RelayMessage } from '@parley/protocol/wire';
import type { Relay } from '../src/index.js';
import { call, login, msgId, newDevice, setupCrypto, until } from './helpers.js';

const root = join(import.meta.dirname, '..', '..', '..');
const fixture = join(import.meta.dirname, 'fixtures', 'relay-child.ts');
const extended = process.env.PARLEY_TEST_SCALE === 'extended';
const ROUNDS = extended ? 50 : 10;
const PER_ROUND = extended ? 200 : 100;

async function spawnRelay(db: string): Promise<{ child: ChildProcess; relay: Relay }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, db], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`relay child exited early (${code})`)));
  });
  const { url, origin } = JSON.parse(line) as { url: string; origin: string };
  return { child, relay: { url, origin } as Relay };
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

test(`R8: ${ROUNDS} random SIGKILLs of the SQLite relay lose 0 acked messages`, { timeout: 180_000 }, async () => {
  await setupCrypto();
  const dir = mkdtempSync(join(tmpdir(), 'parley-durable-'));
  const db = join(dir, 'relay.db');
  const sender = newDevice();
  const recipient = newDevice();
  const acked = new Set<string>();
  let retry: string[] = [];
  const surfaced = new Set<string>(); // app view after (from, id) dedupe
  let redeliveries = 0;
  const seed = Date.now();
  let rnd = seed;
  const rand = (n: number) => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) % n);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const { child, relay } = await spawnRelay(db);
      const s = await login(relay, sender);
      // Odd rounds: the recipient is online, receiving and acking while the kill happens.
      let r: Awaited<ReturnType<typeof login>> | undefined;
      if (round % 2 === 1) {
        r = await login(relay, recipient);
        const socket = r.socket;
        const onMessage = (m: RelayMessage) => {
          const key = `${m.from}/${m.id}`;
          if (surfaced.has(key)) redeliveries++;
          surfaced.add(key); // "durably processed" before the ack, as a client would
          socket.emit('ack', { seqs: [m.seq] }, () => undefined);
        };
        // What arrived with the auth ack, then everything live.
        for (const m of r.inbox.splice(0)) onMessage(m);
        socket.on('message', onMessage);
      }
      const ids = [...retry, ...Array.from({ length: PER_ROUND }, () => msgId())];
      retry = [];
      const killAt = 5 + rand(PER_ROUND - 10);
      let done = 0;
      let killed: Promise<void> | undefined;
      const window = 16;
      let next = 0;
      await new Promise<void>((resolve) => {
        const pump = () => {
          while (next < ids.length && next - done < window && !killed) {
            const id = ids[next++]!;
            call(s.socket, 'send', { to: recipient.deviceId, id, envelope: new TextEncoder().encode(`msg ${id}`) }).then(
              (res) => {
                if (res.ok) acked.add(id);
                else retry.push(id);
              },
              () => retry.push(id), // no ack: the sender will retry it
            ).finally(() => {
              done++;
              if (!killed && done >= killAt) killed = kill(child); // mid-stream: 16 sends still in flight
              if (done === next && (killed || next === ids.length)) resolve();
              else pump();
            });
          }
        };
        pump();
      });
      await (killed ?? kill(child));
      s.socket.disconnect();
      r?.socket.disconnect();
      // Anything sent but unacked is retried next round with the same id.
      retry = ids.filter((id) => !acked.has(id));
    }
    // Final restart: drain everything.
    const { child, relay } = await spawnRelay(db);
    try {
      const r = await login(relay, recipient);
      let lastCount = -1;
      const handle = async () => {
        const batch = r.inbox.splice(0);
        for (const m of batch) {
          const key = `${m.from}/${m.id}`;
          if (surfaced.has(key)) redeliveries++;
          surfaced.add(key);
        }
        if (batch.length) await call(r.socket, 'ack', { seqs: batch.map((m) => m.seq) });
        return batch.length;
      };
      // Keep acking until the relay says nothing is pending.
      for (let i = 0; i < 200; i++) {
        await handle();
        const q = await call(r.socket, 'fetchQueue', {});
        await new Promise((res) => setTimeout(res, 50));
        if (q.pending === 0 && r.inbox.length === 0) break;
        if (q.pending === lastCount && r.inbox.length === 0) await until(() => r.inbox.length > 0, 2000).catch(() => undefined);
        lastCount = q.pending;
      }
      r.socket.disconnect();
    } finally {
      await kill(child);
    }
    const lost = [...acked].filter((id) => !surfaced.has(`${sender.deviceId}/${id}`));
    assert.ok(acked.size >= ROUNDS * 5, `acked ${acked.size}`);
    assert.deepEqual(lost, [], `lost acked messages (seed ${seed})`);
    // Dedupe makes each message surface once; redeliveries are the at-least-once cost.
    const surfacedFromSender = [...surfaced].filter((k) => k.startsWith(sender.deviceId));
    assert.equal(surfacedFromSender.length, new Set(surfacedFromSender).size);
    console.log(`durability: ${ROUNDS} kills, ${acked.size} acked, ${surfacedFromSender.length} delivered, 0 lost, ${redeliveries} redeliveries deduped`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
