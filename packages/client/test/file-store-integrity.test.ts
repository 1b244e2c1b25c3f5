/**
 * The FileStore's integrity covers the set of records and their versions, not only each record
 * (issue 10, Medium 8; docs/threats.md ST1): someone without the key who appends, removes or
 * truncates log lines cannot delete a record, bring back an older version of one, or drop the
 * last transactions. Each case below worked before (the log was a list of independently sealed
 * values: "lifted an IDENTITY_CHANGED block and reset a label pin") and is refused at open with
 * `STORAGE_INTEGRITY` now. What stays out of reach: replacing the whole directory with an older
 * copy of itself (README, "What the store cannot promise").
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isParleyError } from '@parley/protocol';
import { FileStore } from '../src/node/index.js';
import { setupCrypto, str, text } from '../../engine/test/helpers/engines.js';

const SECRET = 'integrity-test-secret-0123456789abcdef';
const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'parley-integrity-'));
  dirs.push(d);
  return join(d, 'store');
}
before(setupCrypto);
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The store's log file (journal.log; records.log before issue 10). */
function logOf(dir: string): string {
  return existsSync(join(dir, 'journal.log')) ? join(dir, 'journal.log') : join(dir, 'records.log');
}
async function lines(dir: string): Promise<string[]> {
  return (await readFile(logOf(dir), 'utf8')).split('\n').filter(Boolean);
}
const refused = (e: unknown) => {
  assert.ok(isParleyError(e, 'STORAGE_INTEGRITY'), `expected STORAGE_INTEGRITY, got ${String(e)}`);
  return true;
};
const open = (dir: string) => FileStore.open({ dir, storageSecret: SECRET });

/** Writes `batches` (each one transaction), closes, and checks the store opens as written. */
async function build(dir: string, batches: ([string, string][] | { del: string[] })[]): Promise<void> {
  const s = await open(dir);
  for (const b of batches) {
    if (Array.isArray(b)) await s.setMany(b.map(([k, v]) => [k, text(v)]));
    else await s.delMany(b.del);
  }
  await s.close();
  const again = await open(dir);
  await again.close();
}

describe('FileStore set integrity (issue 10 Medium 8, THREATS ST1)', () => {
  it('rolling one record back by appending an older line again is refused (an IDENTITY_CHANGED block lifted)', async () => {
    const dir = await tempDir();
    await build(dir, [
      [['peer/bob', '{"identity":"old"}'], ['label/support', 'bob']],
      [['session/bob/1', 'session state']],
      [['peer/bob', '{"identity":"old","blocked":{"label":"support"}}']],
    ]);
    const older = (await lines(dir)).find((l) => l.includes('peer/bob'))!;
    await appendFile(logOf(dir), `${older}\n`);
    await assert.rejects(open(dir), refused);
  });

  it('deleting one record by appending a delete line is refused (a label pin reset)', async () => {
    const dir = await tempDir();
    await build(dir, [[['label/support', 'bob'], ['account', 'identity']], [['peer/bob', 'p']]]);
    await appendFile(logOf(dir), `${JSON.stringify({ d: ['label/support'] })}\n`);
    await assert.rejects(open(dir), refused);
  });

  it('replaying a genuine earlier delete line is refused', async () => {
    const dir = await tempDir();
    await build(dir, [[['label/support', 'alice']], { del: ['label/support'] }, [['label/support', 'bob']]]);
    const del = (await lines(dir)).find((l) => l.includes('"d":["label/support"]'))!;
    assert.ok(del, 'the delete is one line');
    await appendFile(logOf(dir), `${del}\n`);
    await assert.rejects(open(dir), refused);
  });

  it('dropping the last transaction (cut at a line end, or in the middle of it) is refused', async () => {
    for (const cut of ['line', 'mid-line'] as const) {
      const dir = await tempDir();
      // The last transaction only adds a record: nothing older is superseded by it.
      await build(dir, [[['account', 'identity'], ['peer/bob', 'p']], [['label/support', 'bob']]]);
      const all = await lines(dir);
      const before = Buffer.byteLength(all.slice(0, -1).map((l) => `${l}\n`).join(''));
      await truncate(logOf(dir), before + (cut === 'line' ? 0 : Math.floor(all[all.length - 1]!.length / 2)));
      await assert.rejects(open(dir), refused, cut);
    }
  });

  it('removing a transaction from the middle of the log is refused', async () => {
    const dir = await tempDir();
    await build(dir, [[['account', 'identity']], [['label/support', 'bob']], [['peer/bob', 'p']]]);
    const all = await lines(dir);
    const i = all.findIndex((l) => l.includes('label/support'));
    all.splice(i, 1);
    await writeFile(logOf(dir), all.map((l) => `${l}\n`).join(''));
    await assert.rejects(open(dir), refused);
  });

  it('an untouched store, and one whose last write was torn by a crash, still open', async () => {
    const dir = await tempDir();
    await build(dir, [[['account', 'identity']], [['label/support', 'bob']]]);
    await appendFile(logOf(dir), '{"n":9,"s":[["label/support","AAAA');
    const s = await open(dir);
    assert.equal(str((await s.get('label/support'))!), 'bob');
    await s.setMany([['peer/bob', text('p')]]);
    await s.close();
    const t = await open(dir);
    assert.equal(str((await t.get('peer/bob'))!), 'p');
    await t.close();
  });
});
