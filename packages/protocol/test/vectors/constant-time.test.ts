/**
 * Tag, MAC, signature and key comparisons go through `constantTimeEqual` (docs/threats.md C22).
 *
 * Two pieces of evidence, both simple on purpose:
 *
 * 1. `constantTimeEqual` itself answers correctly for a difference at every position.
 * 2. A scan of `packages/*\/src` for the comparisons that leak where the first difference is:
 *    `===` / `!==` / `==` / `!=` between non-literal operands, `.equals(`, `Buffer.compare(`,
 *    `.indexOf(` / `.includes(` / `.startsWith(`, whenever an operand is *named* like a secret or a
 *    tag (tag, mac, signature, secret, digest, hash, key, seed, okm, prk). Length, id, type and
 *    similar properties are not secrets and are skipped. It is a name-based lint, not a proof:
 *    a tag held in a variable called `x` passes. A line that is deliberately fine carries a
 *    `ct-ok: <reason>` comment.
 *
 * The timing measurement itself (dudect-style t-test) belongs to the extended tier / bench.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constantTimeEqual } from '../../src/bytes.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

describe('constantTimeEqual', () => {
  test('equal arrays, a difference at every byte and bit, length mismatch', () => {
    const a = Uint8Array.from({ length: 32 }, (_, i) => i * 7);
    assert.equal(constantTimeEqual(a, a.slice()), true);
    assert.equal(constantTimeEqual(new Uint8Array(0), new Uint8Array(0)), true);
    for (let bit = 0; bit < a.length * 8; bit++) {
      const b = a.slice();
      b[bit >> 3]! ^= 1 << (bit & 7);
      assert.equal(constantTimeEqual(a, b), false, `bit ${bit}`);
    }
    assert.equal(constantTimeEqual(a, a.subarray(0, 31)), false);
  });
});

/**
 * Reviewed findings in code this suite does not own, each comparing public data. Matched by file
 * and code fragment (not line number); the owners can instead mark the line `ct-ok: <reason>`
 * and drop the entry here. A stale entry fails the scan, so the list cannot rot silently.
 */
const REVIEWED: readonly { readonly file: string; readonly fragment: string; readonly why: string }[] = [
  {
    file: 'packages/protocol/src/identity-public.ts',
    fragment: 'toHex(a.signingKey) === toHex(b.signingKey)',
    why: 'compares public identity keys',
  },
  {
    file: 'packages/relay/src/store/memory.ts',
    fragment: 'r.hash === record.hash',
    why: 'SHA-256 of a random API key, used as an index: timing could reveal hash bits, not the key (preimage resistance)',
  },
  {
    file: 'packages/relay/src/store/memory.ts',
    fragment: 'r.hash === hash',
    why: 'as above: lookup by API-key hash in the in-memory test store',
  },
];

/**
 * Operand names that hold (or are derived from) secrets or tags: the whole name (`tag`, `mac`)
 * or its last camelCase word (`authTag`, `apiKey`, `macHex`), so `prekey` or `monkey` do not count.
 */
const SECRET_NAME =
  /(?:^(?:tag|mac|hmac|signature|sig|secret|digest|hash|key|seed|okm|prk)s?|[a-z0-9_$](?:Tag|Mac|Hmac|Signature|Sig|Secret|Digest|Hash|Key|Seed|Okm|Prk)s?)(?:Hex|B64|Base64|Bytes|String)?$/;
/** `SOME_CONSTANT`: a public value, not a secret. */
const CONSTANT = /^[A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9_]+)*$/;
/** Properties that are public facts about a value, never its content. */
const PUBLIC_PROPERTY =
  /\.(length|byteLength|size|type|kind|id|code|name|version|count|algorithm|alg|crv|kty|role|state|status|revokedAt|createdAt|expiresAt)$/;
/** Operands that are literals (strings are masked to '' before matching). */
const LITERAL = /^(?:''|-?\d[\w.]*n?|null|undefined|true|false|NaN)$/;
const OPERAND = String.raw`[\w$.!?\[\]]+(?:\([\w$.,\s]*\))?`;
const COMPARISON = new RegExp(String.raw`(${OPERAND})\s*(?:===|!==|==|!=)\s*(${OPERAND})`, 'g');
const METHOD_COMPARE = new RegExp(
  String.raw`(${OPERAND})\.(?:equals|indexOf|includes|startsWith|endsWith)\(\s*(${OPERAND})|Buffer\.compare\(\s*(${OPERAND})\s*,\s*(${OPERAND})`,
  'g',
);

/** True when an operand expression is named like a secret and is not a public property of one. */
function looksSecret(operand: string | undefined): boolean {
  if (operand === undefined) return false;
  // `!x`, `Boolean(x)`, `Number(x)`: booleans and numbers say nothing about the bytes.
  if (/^(?:!|Boolean\(|Number\()/.test(operand)) return false;
  const bare = operand.replace(/^\(+/, '').replace(/\?\./g, '.');
  if (PUBLIC_PROPERTY.test(bare) || LITERAL.test(bare)) return false;
  // `toHex(tag)`, `f(a.key)`: judge what is inside a call, else the last identifier.
  const inner = /\(([^()]*)\)$/.exec(bare)?.[1];
  const target = inner !== undefined && inner.trim() !== '' ? inner.trim() : bare.replace(/\(.*$/, '');
  const last = target.split('.').pop() ?? '';
  return !PUBLIC_PROPERTY.test(target) && !CONSTANT.test(target) && SECRET_NAME.test(last);
}

/** Masks string contents and strips comments, keeping line structure. Good enough for a lint. */
function code(line: string): string {
  return line
    .replace(/(['"`])(?:\\.|(?!\1).)*\1/g, "''")
    .replace(/\/\/.*$/, '')
    .replace(/\/\*.*?\*\//g, '');
}

/** `path:line: text` for every line of `file` that {@link looksSecretLine} flags. */
function findings(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((raw, i) =>
      raw.includes('ct-ok:') || /^\s*(\*|\/\/)/.test(raw) || !looksSecretLine(raw)
        ? []
        : [`${relative(REPO_ROOT, file)}:${i + 1}: ${raw.trim()}`],
    );
}

/** True when a line compares something named like a secret in variable time. */
function looksSecretLine(line: string): boolean {
  const masked = code(line);
  for (const m of masked.matchAll(COMPARISON)) {
    const [left, right] = [m[1], m[2]];
    if (LITERAL.test(left ?? '') || LITERAL.test(right ?? '')) continue;
    if (looksSecret(left) || looksSecret(right)) return true;
  }
  for (const m of masked.matchAll(METHOD_COMPARE)) {
    const operands = m.slice(1).filter((o): o is string => o !== undefined);
    // `key.startsWith(API_KEY_PREFIX)`: comparing against a public constant leaks nothing.
    if (operands.some((o) => LITERAL.test(o) || CONSTANT.test(o))) continue;
    if (operands.some(looksSecret)) return true;
  }
  return false;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (/\.(ts|mts|js|mjs)$/.test(name) && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

describe('no variable-time comparison of secrets or tags in packages/*/src', () => {
  test('the lint catches what it should, and not what it should not', () => {
    for (const bad of [
      'if (tag === expectedTag) return;',
      'return toHex(mac) !== toHex(expected);',
      'if (Buffer.from(sig).equals(signature)) ok();',
      'const i = knownKeys.indexOf(apiKey);',
      'return Buffer.compare(digest, other) === 0;',
      'if (authTagHex === received) return;',
    ]) {
      assert.equal(looksSecretLine(bad), true, bad);
    }
    for (const fine of [
      'if (signature.length !== 64) return false;',
      "const c = kind === 'xchacha' ? a : b;",
      'if (key === undefined) throw x;',
      "if (typeof key === 'string') y();",
      'return constantTimeEqual(tag, expected);',
      'if (parsed.type !== MESSAGE_TYPE.prekey) x();',
      'if (!key.startsWith(API_KEY_PREFIX)) return;',
      'if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) fail();',
      'if (hit !== undefined && constantTimeEqual(hit.bytes, bytes)) return hit.key;',
    ]) {
      assert.equal(looksSecretLine(fine), false, fine);
    }
  });

  test('scan', (t) => {
    const files = readdirSync(join(REPO_ROOT, 'packages')).flatMap((p) => {
      const src = join(REPO_ROOT, 'packages', p, 'src');
      try {
        return statSync(src).isDirectory() ? sourceFiles(src) : [];
      } catch {
        return [];
      }
    });
    assert.ok(files.length > 0, 'no source files found: the scan would prove nothing');
    const all = files.flatMap(findings);
    const reviewed = (f: string) => REVIEWED.find((r) => f.startsWith(`${r.file}:`) && f.includes(r.fragment));
    const found = all.filter((f) => reviewed(f) === undefined);
    const stale = REVIEWED.filter((r) => !all.some((f) => reviewed(f) === r));
    t.diagnostic(`scanned ${files.length} files; ${all.length - found.length} reviewed public-data comparisons`);
    assert.deepEqual(stale, [], 'reviewed entries that no longer match anything: remove them');
    assert.deepEqual(found, [], `use constantTimeEqual (or mark a public-data line with "ct-ok: <reason>"):\n${found.join('\n')}`);
  });
});
