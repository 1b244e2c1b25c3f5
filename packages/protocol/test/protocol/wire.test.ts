/**
 * Wire format: padding buckets (docs/threats.md C23) and version/type confusion (C24).
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Account, MESSAGE_TYPE, PADDING_BUCKET, WIRE_VERSION, initCrypto, parseMessage, limits } from '../../src/index.js';
import { establish, expectError, str, text } from '../helpers/protocol.js';

before(() => initCrypto('node'));

/** version + type + header nonce + encrypted header + body nonce + tag */
const OVERHEAD = 2 + 24 + 56 + 24 + 16;
const bucketOf = (plaintextLength: number) => Math.ceil((plaintextLength + 4) / PADDING_BUCKET);

describe('C23 padding: ciphertext length depends only on the 256-byte bucket', () => {
  test('lengths 0..1,100: wire length = overhead + 256 x bucket, whatever the content', () => {
    const { a, b } = establish();
    const lengthsByBucket = new Map<number, Set<number>>();
    for (let len = 0; len <= 1100; len += len < 300 ? 1 : 7) {
      const contents = [new Uint8Array(len), new Uint8Array(len).fill(0x61), globalThis.crypto.getRandomValues(new Uint8Array(len))];
      for (const plaintext of contents) {
        const wire = a.encrypt(plaintext);
        assert.equal(wire.length, OVERHEAD + PADDING_BUCKET * bucketOf(len), `plaintext length ${len}`);
        const set = lengthsByBucket.get(bucketOf(len)) ?? new Set();
        lengthsByBucket.set(bucketOf(len), set.add(wire.length));
        assert.deepEqual(b.decrypt(wire), plaintext);
      }
    }
    for (const [bucket, lengths] of lengthsByBucket) assert.equal(lengths.size, 1, `bucket ${bucket} leaks more than its size`);
    // The bucket boundary: 252 bytes (+4-byte length prefix) fill one bucket exactly.
    assert.equal(a.encrypt(new Uint8Array(252)).length, OVERHEAD + 256);
    assert.equal(a.encrypt(new Uint8Array(253)).length, OVERHEAD + 512);
  });

  test('prekey messages pad the same way (fixed 171-byte prefix)', () => {
    const alice = Account.create();
    const bob = Account.create();
    const s = alice.createOutboundSession(bob.bundle());
    assert.equal(s.encrypt(new Uint8Array(0)).length, 171 + OVERHEAD + 256);
    assert.equal(s.encrypt(new Uint8Array(1000)).length, 171 + OVERHEAD + 256 * 4);
  });

  test('no compression: 50,000 zero bytes stay 50,000+ bytes on the wire, and no compressor is imported', () => {
    const { a } = establish();
    assert.ok(a.encrypt(new Uint8Array(50_000)).length >= 50_000);
    expectError(() => a.encrypt(new Uint8Array(limits.MAX_PLAINTEXT_BYTES + 1)), 'PAYLOAD_TOO_LARGE', 'oversize');
    const srcDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk(srcDir);
    assert.ok(files.length > 10);
    for (const f of files) {
      assert.doesNotMatch(readFileSync(f, 'utf8'), /zlib|CompressionStream|deflate|gzip|brotli|pako|fflate|lz4|snappy/i, f);
    }
  });
});

describe('C24 version downgrade and protocol confusion', () => {
  test('version bytes 0x00, 0x02, 0xff -> UNSUPPORTED_VERSION from the parser, the session and the account', () => {
    const { a, b, bob } = establish();
    const wire = a.encrypt(text('v1'));
    const prekey = establish({ reply: false }).prekeyMessage;
    const digest = b.stateDigest();
    for (const version of [0x00, 0x02, 0xff]) {
      const m = wire.slice();
      m[0] = version;
      const p = prekey.slice();
      p[0] = version;
      expectError(() => parseMessage(m), 'UNSUPPORTED_VERSION', `parse v${version}`);
      expectError(() => b.decrypt(m), 'UNSUPPORTED_VERSION', `session v${version}`);
      expectError(() => bob.createInboundSession(p), 'UNSUPPORTED_VERSION', `account v${version}`);
      // The version of the message nested in a prekey message is checked too.
      const inner = prekey.slice();
      inner[171] = version;
      expectError(() => bob.createInboundSession(inner), 'UNSUPPORTED_VERSION', `nested v${version}`);
    }
    assert.equal(b.stateDigest(), digest);
    assert.equal(str(b.decrypt(wire)), 'v1');
  });

  test('unknown types (a group message on the 1:1 channel, 0x00, 0xff) -> MALFORMED_MESSAGE; the wrong known type -> MALFORMED_MESSAGE', () => {
    const { a, b, bob } = establish();
    const wire = a.encrypt(text('t'));
    for (const type of [0x00, 0x03, 0x04, 0xff]) {
      const m = wire.slice();
      m[1] = type;
      expectError(() => parseMessage(m), 'MALFORMED_MESSAGE', `type ${type}`);
      expectError(() => b.decrypt(m), 'MALFORMED_MESSAGE', `session type ${type}`);
      expectError(() => bob.createInboundSession(m), 'MALFORMED_MESSAGE', `account type ${type}`);
    }
    expectError(() => bob.createInboundSession(wire), 'MALFORMED_MESSAGE', 'a ratchet message is not a prekey message');
    const asPrekey = wire.slice();
    asPrekey[1] = MESSAGE_TYPE.prekey;
    expectError(() => b.decrypt(asPrekey), 'MALFORMED_MESSAGE', 'ratchet bytes labelled as a prekey message');
    assert.equal(str(b.decrypt(wire)), 't');
  });

  test('inputs that are not a message at all -> MALFORMED_MESSAGE', () => {
    for (const input of [new Uint8Array(0), new Uint8Array([WIRE_VERSION]), 'hello' as unknown as Uint8Array, null as unknown as Uint8Array, [1, 2, 3] as unknown as Uint8Array]) {
      expectError(() => parseMessage(input), 'MALFORMED_MESSAGE', String(input));
    }
  });

  test('the parser exposes exactly the documented layout', () => {
    const { a, prekeyMessage, alice } = establish();
    const parsedPrekey = parseMessage(prekeyMessage);
    assert.equal(parsedPrekey.type, MESSAGE_TYPE.prekey);
    if (parsedPrekey.type !== MESSAGE_TYPE.prekey) return;
    assert.deepEqual(parsedPrekey.identity.signingKey, alice.publicIdentity.signingKey);
    assert.deepEqual(parsedPrekey.identity.dhKey, alice.publicIdentity.dhKey);
    assert.deepEqual(parsedPrekey.baseKey, a.baseKey);
    assert.deepEqual(parsedPrekey.message.bytes, prekeyMessage.subarray(171));
    const wire = a.encrypt(text('layout'));
    const m = parseMessage(wire);
    assert.equal(m.type, MESSAGE_TYPE.message);
    if (m.type !== MESSAGE_TYPE.message) return;
    assert.deepEqual(m.headerNonce, wire.subarray(2, 26));
    assert.deepEqual(m.encryptedHeader, wire.subarray(26, 82));
    assert.deepEqual(m.bodyNonce, wire.subarray(82, 106));
    assert.deepEqual(m.body, wire.subarray(106));
    assert.deepEqual(m.authenticatedPrefix, wire.subarray(0, 82));
  });
});
