/**
 * Crash evidence (docs/threats.md ST3, I4, I5): the receiving app is a separate process killed with
 * SIGKILL at random moments while messages stream in, then restarted on the same FileStore.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setupCrypto } from '../../engine/test/helpers/engines.js';
import { client, startRelay, until } from './helpers/relay.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/receiver.ts', import.meta.url));
const MESSAGES = Number(process.env.PARLEY_TEST_SCALE === 'extended' ? 400 : 60);
const KILLS = process.env.PARLEY_TEST_SCALE === 'extended' ? 20 : 4;

let dir: string;
before(async () => {
  await setupCrypto();
  dir = await mkdtemp(join(tmpdir(), 'parley-client-crash-'));
});
after(() => rm(dir, { recursive: true, force: true }));

function startReceiver(url: string, state: string, record: string): Promise<{ child: ChildProcess; deviceId: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, url, state, record], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('receiver did not start'));
    }, 20_000);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready ([0-9a-f]{32})/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, deviceId: m[1]! });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`receiver exited early (${code})`));
    });
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

describe('crash consistency over a real relay', () => {
  it(`receiver killed -9 ${KILLS} times while ${MESSAGES} messages stream in: 0 lost, duplicates only from kills`, async () => {
    const relay = await startRelay();
    const state = join(dir, 'bob');
    const record = join(dir, 'record.txt');
    const alice = await client(relay);
    let receiver = await startReceiver(relay.url, state, record);
    const bobId = receiver.deviceId;
    try {
      await alice.client.connect();
      const sent: string[] = [];
      const killAt = new Set<number>();
      while (killAt.size < KILLS) killAt.add(5 + Math.floor(Math.random() * (MESSAGES - 10)));
      for (let i = 0; i < MESSAGES; i++) {
        sent.push((await alice.client.send(bobId, `m${i}`)).id);
        if (killAt.has(i)) {
          // Let some of the stream land, then kill mid-flight and restart on the same state.
          await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 40)));
          await kill(receiver.child);
          receiver = await startReceiver(relay.url, state, record);
          assert.equal(receiver.deviceId, bobId, 'same identity after the crash');
        }
      }
      const lines = async () => (await readFile(record, 'utf8').catch(() => '')).split('\n').filter(Boolean);
      let got: string[] = [];
      await until(() => false === false && got.length >= 0, 1, 'noop').catch(() => undefined);
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        got = await lines();
        if (new Set(got).size === sent.length) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const unique = new Set(got);
      const lost = sent.filter((id) => !unique.has(id));
      const duplicates = got.length - unique.size;
      assert.deepEqual(lost, [], 'nothing lost');
      assert.ok([...unique].every((id) => sent.includes(id)), 'nothing invented');
      // A duplicate needs a kill between the app's handler and the inbox delete (documented).
      assert.ok(duplicates <= KILLS, `duplicates ${duplicates} > kills ${KILLS}`);
      if (duplicates > 0) console.log(`# ${duplicates} duplicate(s) from ${KILLS} kills (handler ran, kill before inbox delete)`);
    } finally {
      await kill(receiver.child);
      await alice.client.close();
      await relay.close();
    }
  });
});
