/**
 * Property-based fuzzing of the enclave RPC (docs/threats.md B4, "Fuzzing" figure: ≥ 10⁴ iterations
 * in CI): every input either parses or fails with a typed `MALFORMED_MESSAGE`, in both directions,
 * and a stream of random messages never takes the worker down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isParleyError } from '@parley/protocol';
import { isMethod, methods, parseEnclaveMessage, parseHostMessage, parseParams, parseResult, type MethodName } from '../src/rpc/messages.js';
import { openSupervisor, setupCrypto, tempDir, waitFor } from './helpers.js';

await setupCrypto();

const bytes = fc.uint8Array({ maxLength: 80 });
const leaf = fc.oneof(fc.string({ maxLength: 40 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), bytes, fc.constant('__proto__'), fc.bigInt());
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 4 }), fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'type', 'callId', 'method', 'params', 'constructor')), tie('node'), { maxKeys: 5 })),
})).node;
const methodNames = Object.keys(methods) as MethodName[];
const hostLike = fc.record({
  type: fc.constantFrom('call', 'persisted', 'x'),
  callId: fc.oneof(fc.integer(), fc.double(), fc.string()),
  method: fc.oneof(fc.constantFrom(...methodNames), fc.string({ maxLength: 12 })),
  params: value,
});

function typedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isParleyError(e, 'MALFORMED_MESSAGE'), `untyped failure: ${String(e)}`);
  }
}

test('10^4 random messages: every validator parses or throws MALFORMED_MESSAGE', () => {
  fc.assert(
    fc.property(fc.oneof(value, hostLike), fc.constantFrom(...methodNames), (v, method) => {
      typedOrOk(() => parseHostMessage(v));
      typedOrOk(() => parseEnclaveMessage(v));
      typedOrOk(() => parseParams(method, v));
      typedOrOk(() => parseResult(method, v));
      if (typeof v === 'object' && v !== null && 'method' in v && typeof v.method === 'string') isMethod(v.method);
    }),
    { numRuns: 10_000, seed: 0x5eed },
  );
});

test('random messages posted to a live worker: typed answers, no crash, still serving', async (t) => {
  const dir = tempDir(t);
  const answers: { type?: string; error?: { code?: string } }[] = [];
  const { sup } = await openSupervisor(dir, { unsafeTestingTap: (d, m) => d === 'fromEnclave' && answers.push(m as never) });
  t.after(() => sup.stop());
  await sup.start();
  answers.length = 0;
  const samples = fc.sample(fc.oneof(value, hostLike), { numRuns: 500, seed: 42 });
  let posted = 0;
  for (const s of samples) {
    try {
      sup.unsafeTestingPostRaw(s);
      posted++;
    } catch {
      // not structured-cloneable (e.g. a BigInt inside is fine, a function is not): skipped
    }
  }
  const att = await sup.call('attest', {});
  assert.equal(att.version, 1);
  await waitFor(() => answers.length >= 1, 5000);
  for (const a of answers) {
    if (a.type === 'result' || a.type === 'rejected') {
      if (a.error) assert.notEqual(a.error.code, 'INTERNAL');
    }
  }
  assert.equal(sup.stats.crashes, 0);
  assert.ok(posted > 400);
});
