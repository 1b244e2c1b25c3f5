/**
 * `parley-org disclose` and `parley-org inspect` of an archive disclosure (org-disclose.ts): the
 * disclosure printed verifies under the org key with the requested archive key, retention and
 * openers; `inspect` with another org key says it is not valid (exit 1).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fromBase64, fromHex, generateOrgKey, getCrypto, toHex, verifyArchiveDisclosure } from '@parley/protocol';
import { orgCli } from './helpers/org-cli.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';

const NOW = Date.UTC(2030, 0, 1);
let dir: string;
before(async () => {
  await setupCrypto();
  dir = await mkdtemp(join(tmpdir(), 'parley-org-disclose-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const run = orgCli(() => NOW);

describe('parley-org disclose', () => {
  it('signs a disclosure the protocol verifies; inspect checks it against the org key', async () => {
    const keyPath = join(dir, 'org.key');
    const k = await run('keygen', '--out', keyPath);
    assert.equal(k.code, 0, k.err);
    const orgKey = k.out.trim();
    const archiveKey = toHex(getCrypto().x25519Generate().publicKey);
    const d = await run('disclose', '--org-key', keyPath, '--label', 'support', '--archive-key', archiveKey, '--retention-days', '365', '--openers', 'compliance,legal');
    assert.equal(d.code, 0, d.err);
    const bytes = fromBase64(d.out.trim());
    const v = verifyArchiveDisclosure(bytes, { orgKey: fromHex(orgKey), label: 'support', now: NOW });
    assert.deepEqual([toHex(v.archiveKey), v.retentionDays, v.openers, v.issuedAt], [archiveKey, 365, ['compliance', 'legal'], NOW]);

    const ok = await run('inspect', d.out.trim(), '--org-key-public', orgKey);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(JSON.parse(ok.out).type, 'archive-disclosure');
    const other = await run('inspect', d.out.trim(), '--org-key-public', toHex(generateOrgKey().publicKey));
    assert.equal(other.code, 1);
    assert.equal(JSON.parse(other.out).reason, 'orgKey');
    // Bad arguments are refused before anything is signed.
    assert.notEqual((await run('disclose', '--org-key', keyPath, '--label', 'support', '--archive-key', 'zz', '--retention-days', '365')).code, 0);
    assert.notEqual((await run('disclose', '--org-key', keyPath, '--label', 'support', '--archive-key', archiveKey, '--retention-days', '0')).code, 0);
  });
});
