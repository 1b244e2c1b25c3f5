import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { orgCertificateFromBase64, toHex, verifyOrgCertificate } from '@parley/protocol';
import { ConversationEngine, MemoryStore } from '@parley/engine';
import { orgCli } from './helpers/org-cli.js';
import { setupCrypto } from '../../engine/test/helpers/engines.js';

let dir: string;
before(async () => {
  await setupCrypto();
  dir = await mkdtemp(join(tmpdir(), 'parley-org-cli-'));
});
after(() => rm(dir, { recursive: true, force: true }));

const run = orgCli();

describe('parley-org CLI', () => {
  it('keygen writes a 0600 key and prints the public key; certify issues a certificate the engine accepts', async () => {
    const keyPath = join(dir, 'org.key');
    const k = await run('keygen', '--out', keyPath);
    assert.equal(k.code, 0, k.err);
    const orgKeyHex = k.out.trim();
    assert.match(orgKeyHex, /^[0-9a-f]{64}$/);
    assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
    assert.equal((await run('keygen', '--out', keyPath)).code, 1, 'never overwrites a key');

    const bot = await ConversationEngine.open({ store: new MemoryStore() });
    const identityHex = toHex(bot.publicIdentity.signingKey) + toHex(bot.publicIdentity.dhKey);
    const c = await run('certify', '--org-key', keyPath, '--identity', identityHex, '--role', 'bot', '--label', 'support', '--days', '30');
    assert.equal(c.code, 0, c.err);
    const cert = verifyOrgCertificate(orgCertificateFromBase64(c.out.trim()), {
      orgKey: Uint8Array.from(Buffer.from(orgKeyHex, 'hex')),
      identity: bot.publicIdentity,
      now: Date.now(),
    });
    assert.equal(cert.role, 'bot');
    assert.equal(cert.label, 'support');
    assert.ok(cert.expiresAt > Date.now() + 29 * 86400_000);

    // Identity from a JSON file, JSON output, inspect.
    const idFile = join(dir, 'id.json');
    await writeFile(idFile, JSON.stringify({ signingKey: toHex(bot.publicIdentity.signingKey), dhKey: toHex(bot.publicIdentity.dhKey) }));
    const j = await run('certify', '--org-key', keyPath, '--identity', idFile, '--role', 'agent', '--label', 'alice@example.com', '--json');
    assert.equal(j.code, 0, j.err);
    const parsed = JSON.parse(j.out) as { role: string; certificate: string; orgKey: string };
    assert.equal(parsed.role, 'agent');
    assert.equal(parsed.orgKey, orgKeyHex);
    const ins = await run('inspect', parsed.certificate, '--org-key-public', orgKeyHex);
    assert.equal(JSON.parse(ins.out).valid, true);
  });

  it('refuses bad input with a message, not a stack trace', async () => {
    const keyPath = join(dir, 'org2.key');
    await run('keygen', '--out', keyPath);
    const bad = await run('certify', '--org-key', keyPath, '--identity', 'nope', '--role', 'bot', '--label', 'support');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /identity/);
    const badRole = await run('certify', '--org-key', keyPath, '--identity', 'ab'.repeat(64), '--role', 'admin', '--label', 'x');
    assert.notEqual(badRole.code, 0);
    const badDays = await run('certify', '--org-key', keyPath, '--identity', 'ab'.repeat(64), '--role', 'bot', '--label', 'x', '--days', '99999');
    assert.notEqual(badDays.code, 0);
  });
});
