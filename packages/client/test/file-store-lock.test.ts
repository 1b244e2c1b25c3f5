/**
 * One process per store directory, arbitrated by the operating system (issue 10, Medium 9;
 * docs/threats.md ST5). Racer processes (fixtures/lock-racer.ts) open the same new store in the
 * same millisecond, over and over: exactly one wins each trial, with no lock left behind and with
 * a stale lock left by a process killed with SIGKILL while it held the store. Before, two
 * processes both opened one store in 1 of 12 trials (no lock file) and 9 of 12 (stale lock).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isParleyError } from '@parley/protocol';
import { FileStore } from '../src/node/index.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/lock-racer.ts', import.meta.url));
const SECRET = 'lock-race-secret-0123456789abcdef0123';
const RACERS = 4;
const TRIALS = Number(process.env.PARLEY_TEST_SCALE === 'extended' ? 40 : 10);

let root: string;
before(async () => {
  await setupCrypto();
  root = await mkdtemp(join(tmpdir(), 'parley-lock-'));
});
after(() => rm(root, { recursive: true, force: true }));

interface Racer {
  child: ChildProcess;
  next(match: (line: string) => boolean): Promise<string>;
  send(line: string): void;
}

function racer(): Promise<Racer> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: { match: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.findIndex((x) => x.match(line));
      if (w >= 0) waiters.splice(w, 1)[0]!.resolve(line);
      else lines.push(line);
    }
  });
  const r: Racer = {
    child,
    next: (match) =>
      new Promise((resolve, reject) => {
        const j = lines.findIndex(match);
        if (j >= 0) return resolve(lines.splice(j, 1)[0]!);
        const timer = setTimeout(() => reject(new Error('racer did not answer')), 30_000);
        waiters.push({ match, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      }),
    send: (line) => child.stdin!.write(`${line}\n`),
  };
  return r.next((l) => l === 'ready').then(() => r);
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** All racers open `dir` in the same millisecond; returns the winners' indexes. */
async function race(racers: Racer[], dir: string): Promise<number[]> {
  const t0 = Date.now() + 150;
  for (const r of racers) r.send(`open ${dir} ${t0}`);
  const answers = await Promise.all(racers.map((r) => r.next((l) => l.startsWith(`won ${dir}`) || l.startsWith(`lost ${dir}`))));
  for (const a of answers) if (a.startsWith('lost')) assert.match(a, / USAGE$/, `a loser is told the store is in use: ${a}`);
  return answers.flatMap((a, i) => (a.startsWith('won') ? [i] : []));
}

describe('FileStore lock between processes (issue 10 Medium 9, THREATS ST5)', () => {
  it(`${RACERS} processes race to open one store, ${TRIALS} trials without a lock and ${TRIALS} over a stale lock of a killed process: exactly one wins each`, async () => {
    const racers = await Promise.all(Array.from({ length: RACERS }, () => racer()));
    try {
      const outcomes: string[] = [];
      // Stale locks: one process opens every stale-trial store (its write committed) and is killed.
      const holder = await racer();
      const stale = Array.from({ length: TRIALS }, (_, i) => join(root, `stale-${i}`));
      for (const dir of stale) {
        holder.send(`open ${dir} 0`);
        assert.match(await holder.next((l) => l.includes(dir)), /^won /);
        holder.send(`write ${dir} before-the-kill`);
        await holder.next((l) => l.startsWith(`wrote ${dir}`));
      }
      await kill(holder.child);

      for (const kind of ['fresh', 'stale'] as const) {
        for (let t = 0; t < TRIALS; t++) {
          const dir = kind === 'fresh' ? join(root, `fresh-${t}`) : stale[t]!;
          const winners = await race(racers, dir);
          for (const i of winners) {
            racers[i]!.send(`write ${dir} by-${i}`);
            await racers[i]!.next((l) => l.startsWith(`wrote ${dir}`));
          }
          for (const r of racers) r.send('close');
          await Promise.all(racers.map((r) => r.next((l) => l === 'closed')));
          // Nothing committed is lost: the killed holder's write and every winner's.
          const s = await FileStore.open({ dir, storageSecret: SECRET });
          try {
            const kept = (await s.keys('by-')).length + (kind === 'stale' && (await s.get('before-the-kill')) ? 1 : 0);
            const committed = winners.length + (kind === 'stale' ? 1 : 0);
            outcomes.push(`${kind} ${t}: ${winners.length} winner(s)${kept === committed ? '' : `, ${committed - kept} committed write(s) lost`}`);
          } finally {
            await s.close();
          }
        }
      }
      const bad = outcomes.filter((o) => !o.endsWith(': 1 winner(s)'));
      assert.deepEqual(bad, [], `exactly one winner per trial (${outcomes.length} trials)`);
    } finally {
      await Promise.all(racers.map((r) => kill(r.child)));
    }
  });

  it('in one process: a second open is refused while the first is open, and works after close', async () => {
    const dir = join(root, 'same-process');
    const a = await FileStore.open({ dir, storageSecret: SECRET });
    await assert.rejects(FileStore.open({ dir, storageSecret: SECRET }), (e) => isParleyError(e, 'USAGE'));
    await a.close();
    const b = await FileStore.open({ dir, storageSecret: SECRET });
    await b.close();
  });

  it('a lock file names its holder: a live one (or one on another host) is refused with the file to delete; a reused pid is not the holder', async () => {
    const holder = (pid: number, extra: object = {}) => JSON.stringify({ v: 1, pid, host: hostname(), state: 'held', ...extra });
    const cases = [
      { name: 'live', file: holder(process.ppid), refused: true },
      { name: 'other-host', file: JSON.stringify({ v: 1, pid: 1, host: 'elsewhere.example', state: 'held' }), refused: true },
      { name: 'released', file: holder(process.ppid, { state: 'released' }), refused: false },
      ...(process.platform === 'linux' ? [{ name: 'reused-pid', file: holder(process.pid, { start: 'another-boot/12345' }), refused: false }] : []),
    ];
    for (const c of cases) {
      const dir = join(root, `holder-${c.name}`);
      await mkdir(join(dir, 'lock'), { recursive: true });
      await writeFile(join(dir, 'lock', '7'), c.file);
      if (c.refused) {
        await assert.rejects(FileStore.open({ dir, storageSecret: SECRET }), (e) => isParleyError(e, 'USAGE') && e.message.includes(join(dir, 'lock', '7')), c.name);
      } else {
        const s = await FileStore.open({ dir, storageSecret: SECRET });
        await s.close();
        assert.deepEqual(await readdir(join(dir, 'lock')), ['8'], `${c.name}: the next generation, the old one removed`);
      }
    }
  });
});
