/**
 * The process-mode enclave (README "Enclave modes: worker and process"; docs/threats.md B7, B2):
 * the enclave runs as its own Node process under the permission model, with the same RPC and
 * measurement as a worker. The process refuses a file write outside what it needs, a child
 * process and a native add-on (the permission model itself: `ERR_ACCESS_DENIED`), also from a
 * worker thread of it, where the handler runs; a handler in it is refused a file write, a child
 * process and a fetch outside the egress policy, and reaches an origin inside it; a bot in this
 * mode answers a customer and survives a kill of its enclave process (SIGKILL), restarting from
 * the sealed state with the same identity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { isParleyError } from '@parley/protocol';
import { computeMeasurement, handlerUrl } from '../src/measurement.js';
import { ProcessEnclave } from '../src/host/process-enclave.js';
import { Customer } from './customer.js';
import { startBot, startRelay } from './harness.js';
import { openSupervisor, setupCrypto, tempDir, waitFor } from './helpers.js';
import { EGRESS_HANDLER, startService } from './egress-service.js';

await setupCrypto();

test('B7: the enclave process is under the permission model: no write outside its files, no child process, no add-on (its worker threads too)', { timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  const anchor = join(dir, 'bot.anchor');
  const outside = join(dir, 'outside.txt');
  // Started exactly as the supervisor starts the real enclave (same options and grants), with a
  // test entry that tries what must be refused and reports it.
  const probe = ProcessEnclave.start({
    handlerUrl: handlerUrl(EGRESS_HANDLER),
    rollbackAnchor: anchor,
    sealingFile: { path: join(dir, 'bot.sealing.key'), create: true },
    entryUrl: new URL('./fixtures/process-probe-enclave.mjs', import.meta.url),
  });
  t.after(() => probe.terminate());
  const report = await new Promise<Record<string, string>>((resolve, reject) => {
    probe.on('message', (m) => resolve(m as Record<string, string>));
    probe.on('exit', (code) => reject(new Error(`the probe exited (${code})`)));
    probe.postMessage([outside, anchor]);
  });
  assert.deepEqual(report, {
    permission: 'on',
    writeOutside: 'ERR_ACCESS_DENIED FileSystemWrite',
    writeAnchor: 'allowed',
    readPasswd: 'ERR_ACCESS_DENIED FileSystemRead',
    execFileSync: 'ERR_ACCESS_DENIED ChildProcess',
    spawn: 'ERR_ACCESS_DENIED ChildProcess',
    dlopen: 'ERR_DLOPEN_DISABLED',
    workerWriteOutside: 'ERR_ACCESS_DENIED FileSystemWrite',
  });
  assert.ok(!existsSync(outside), 'nothing was written outside');
});

test('B7/B2: a process-mode bot answers, keeps its handler to the egress policy, and survives a kill of its enclave process', { timeout: 180_000 }, async (t) => {
  const dir = tempDir(t);
  const service = await startService();
  t.after(() => service.close());
  const relay = await startRelay();
  t.after(() => relay.close());
  const egress = [service.origin];
  const { bot, logger } = await startBot(relay, dir, { handler: EGRESS_HANDLER, egress, enclave: 'process', restartBackoffMs: { min: 20, max: 200 } });
  t.after(() => bot.close());
  const pid = bot.supervisor.unsafeTestingEnclavePid;
  assert.ok(pid && pid !== process.pid, 'the enclave is another process');
  assert.equal(bot.measurement, (await computeMeasurement(EGRESS_HANDLER, { egress })).hex, 'the same measurement as in worker mode');

  const customer = await Customer.connect(relay.url);
  t.after(() => customer.close());
  const ask = async (text: string): Promise<{ text?: string; json?: unknown }> => {
    const before = customer.replies.length;
    await customer.send(bot.deviceId, text);
    await waitFor(() => customer.replies.length > before, 30_000, `reply to ${text}`);
    return customer.replies[before]!;
  };
  assert.equal((await ask('hello')).text, 'echo:hello');

  // The handler: a fetch inside the policy works, one outside is FORBIDDEN, files and processes are refused.
  assert.deepEqual((await ask(`fetch ${service.origin}/hello`)).json, { status: 200, url: `${service.origin}/hello`, body: 'hello' });
  const outside = ((await ask(`fetch http://localhost:${service.port}/hello`)).json as { error: { code: string; host: string } }).error;
  assert.equal(outside.code, 'FORBIDDEN');
  assert.equal(outside.host, `localhost:${service.port}`);
  const probe = (await ask('probe')).json as Record<string, { code?: string; message: string } | 'allowed'>;
  for (const name of ['fs', 'childProcess', 'requireFs', 'globalFetch', 'worker', 'processBinding', 'dlopen', 'kill']) {
    const o = probe[name]!;
    assert.ok(o !== 'allowed' && o.code === 'USAGE', `${name}: ${JSON.stringify(o)}`);
  }
  assert.ok(!existsSync('/tmp/parley-egress-probe'), 'the handler wrote no file');

  // A kill of the enclave process: calls fail with ENCLAVE_UNAVAILABLE, it comes back from the sealed state.
  const identity = bot.identityHex;
  const inFlight = bot.supervisor.call('attest', {}).then(
    () => 'ok',
    (e: unknown) => e,
  );
  const during = customer.replies.length;
  await customer.send(bot.deviceId, 'during the kill');
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');
  const r = await inFlight;
  if (r !== 'ok') {
    assert.ok(isParleyError(r, 'ENCLAVE_UNAVAILABLE'), String(r));
    assert.ok(Date.now() - killedAt < 1000, 'rejected within 1 s');
  }
  await waitFor(() => bot.stats.crashes === 1, 5_000, 'the death noticed');
  const again = await bot.supervisor.whenReady();
  assert.notEqual(bot.supervisor.unsafeTestingEnclavePid, pid, 'a new enclave process');
  assert.equal(again.deviceId, bot.deviceId);
  assert.equal(Buffer.from(again.identity.signingKey).toString('hex') + Buffer.from(again.identity.dhKey).toString('hex'), identity);
  await customer.send(bot.deviceId, 'after the kill');
  await waitFor(() => customer.replies.length >= during + 2, 30_000, 'the messages sent during and after the kill answered');
  await new Promise((r) => setTimeout(r, 300)); // a late duplicate would show up here
  assert.deepEqual(
    customer.replies.slice(during).map((x) => x.text).sort(),
    ['echo:after the kill', 'echo:during the kill'],
    'each answered once',
  );
  assert.equal(customer.errors, 0);
  assert.equal(bot.stats.crashes, 1);
  assert.match(logger.text(), /"event":"enclave.crashed","reason":"exit SIGKILL"/);
});

/** Compiles `src/` of the package at `root` into `<into>/dist` with its published exports (as testing-hooks.test.ts does). */
function compilePackage(root: string, into: string): void {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: unknown; publishConfig?: { exports?: unknown } };
  mkdirSync(into, { recursive: true });
  writeFileSync(join(into, 'package.json'), JSON.stringify({ ...manifest, exports: manifest.publishConfig?.exports ?? manifest.exports }));
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      const target = join(into, 'dist', relative(join(root, 'src'), path));
      if (statSync(path).isDirectory()) {
        walk(path);
        continue;
      }
      mkdirSync(dirname(target), { recursive: true });
      if (entry.endsWith('.mjs')) copyFileSync(path, target);
      else if (entry.endsWith('.ts') && !entry.endsWith('.d.ts')) {
        writeFileSync(target.replace(/\.ts$/, '.js'), ts.transpileModule(readFileSync(path, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 }, fileName: path }).outputText);
      }
    }
  };
  walk(join(root, 'src'));
}

test('B7: installed (compiled, pnpm-style symlinks, no TypeScript loader), the process-mode enclave starts with the measurement computeMeasurement gives', { timeout: 120_000 }, async (t) => {
  const packages = fileURLToPath(new URL('../..', import.meta.url));
  const out = mkdtempSync(join(tmpdir(), 'parley-published-process-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  compilePackage(join(packages, 'bot'), out);
  compilePackage(join(packages, 'protocol'), join(out, 'node_modules/@parley/protocol'));
  compilePackage(join(packages, 'engine'), join(out, 'node_modules/@parley/engine'));
  symlinkSync(join(packages, 'protocol/node_modules'), join(out, 'node_modules/@parley/protocol/node_modules'), 'dir');
  writeFileSync(join(out, 'handler.mjs'), "export default async (message, ctx) => { await ctx.reply('hi'); };\n");
  const { EnclaveSupervisor } = (await import(pathToFileURL(join(out, 'dist/host/supervisor.js')).href)) as typeof import('../src/host/supervisor.js');
  const { SealedBlobStore } = (await import(pathToFileURL(join(out, 'dist/host/blob-store.js')).href)) as typeof import('../src/host/blob-store.js');
  const published = (await import(pathToFileURL(join(out, 'dist/measurement.js')).href)) as typeof import('../src/measurement.js');
  const blobStore = await SealedBlobStore.open(join(out, 'state/sealed'));
  const egress = ['api.example.com'];
  const sup = new EnclaveSupervisor({
    enclave: 'process',
    handlerUrl: pathToFileURL(join(out, 'handler.mjs')).href,
    blobStore,
    sealing: { file: join(out, 'state.sealing.key'), create: true },
    rollbackAnchor: join(out, 'state.anchor'),
    oneTimePrekeys: 1,
    egress: published.canonicalEgress(egress),
    logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
    onSend: () => undefined,
    onReady: () => undefined,
  });
  t.after(async () => {
    await sup.stop();
    await blobStore.close();
  });
  const info = await sup.start();
  const expected = await published.computeMeasurement(join(out, 'handler.mjs'), { egress });
  assert.equal(expected.files[0]!.label, '@parley/bot/dist/attestation.js', 'the compiled code is what is measured');
  assert.equal(Buffer.from(info.measurement).toString('hex'), expected.hex);
  assert.ok(existsSync(join(out, 'state.sealing.key')), 'the enclave process created its sealing secret (a granted write)');
});

test('B5: a provided sealing secret crosses to the enclave process once per start, and the host keeps no usable copy', { timeout: 60_000 }, async (t) => {
  const secret = new Uint8Array(32).map((_, i) => i + 1);
  const given: ArrayBuffer[] = [];
  const { sup } = await openSupervisor(tempDir(t), { enclave: 'process', restartBackoffMs: { min: 10, max: 50 }, sealing: { provide: () => given[given.push(secret.slice().buffer) - 1]! } });
  t.after(() => sup.stop());
  const first = await sup.start();
  assert.equal(given.length, 1);
  assert.equal(given[0]!.byteLength, 0, 'detached once sent');
  await sup.unsafeTestingTerminate();
  const again = await sup.whenReady();
  assert.equal(given.length, 2, 'the restart asked the provider again');
  assert.equal(given[1]!.byteLength, 0);
  assert.equal(again.deviceId, first.deviceId, 'the same secret opened the same state');
});
