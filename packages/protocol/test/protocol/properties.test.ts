/**
 * Property evidence (fast-check, fixed seeds, bounded runs; docs/threats.md C7 and section (c)
 * "Fuzzing"): random network schedules over many ratchet turns, and fuzzed decoders.
 *
 * Schedules mix sends in either direction, deliveries from the first 30 queued messages
 * (displacement <= 30), delays (the message is held back and delivered at the very end),
 * duplicates, bit-flip forgeries and junk. Invariants:
 * - every delivered message decrypts exactly once, to its own plaintext;
 * - a repeat never yields a second plaintext (DUPLICATE_MESSAGE, or AUTH_FAILED once its chain
 *   key is gone); forgeries and junk never decrypt and never change the receiver's state;
 * - a legitimate message may be refused only when the receiver already holds the maximum of
 *   MAX_SKIPPED_CHAINS chains of skipped keys (the documented cap evicts the oldest chain);
 * - once everything has been delivered, both skipped-key stores are empty.
 */
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Account, ParleyError, Session, initCrypto, limits, parseMessage } from '../../src/index.js';
import {
  EXTENDED,
  establish,
  flipBit,
  onlyParleyErrors,
  str,
  text,
  unsafeDecodeSessionPickle,
  type Pair,
} from '../helpers/protocol.js';

before(() => initCrypto('node'));

type Side = 'alice' | 'bob';
const other = (s: Side): Side => (s === 'alice' ? 'bob' : 'alice');

type Command =
  | { kind: 'send'; from: Side; count: number }
  | { kind: 'deliver'; to: Side; pick: number }
  | { kind: 'delay'; to: Side; pick: number }
  | { kind: 'duplicate'; to: Side; pick: number }
  | { kind: 'forge'; to: Side; pick: number; bit: number }
  | { kind: 'junk'; to: Side; bytes: Uint8Array };

const side = fc.constantFrom<Side>('alice', 'bob');
const command: fc.Arbitrary<Command> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('send' as const), from: side, count: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('deliver' as const), to: side, pick: fc.nat(29) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delay' as const), to: side, pick: fc.nat(29) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), to: side, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('forge' as const), to: side, pick: fc.nat(), bit: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('junk' as const), to: side, bytes: fc.uint8Array({ minLength: 0, maxLength: 700 }) }) },
);

interface Msg {
  readonly id: number;
  readonly to: Side;
  readonly wire: Uint8Array;
  readonly plaintext: string;
  opened: number;
  lost: boolean;
}

class Network {
  readonly sessions: Record<Side, Session>;
  readonly queue: Record<Side, Msg[]> = { alice: [], bob: [] };
  readonly delayed: Msg[] = [];
  readonly done: Record<Side, Msg[]> = { alice: [], bob: [] };
  readonly sent: Msg[] = [];
  stats = { delivered: 0, lost: 0, duplicates: 0, forgeries: 0, turns: 0 };
  #lastSender: Side | null = null;

  constructor(p: Pair) {
    this.sessions = { alice: p.a, bob: p.b };
  }

  run(cmd: Command): void {
    switch (cmd.kind) {
      case 'send': {
        if (this.#lastSender !== cmd.from) this.stats.turns++;
        this.#lastSender = cmd.from;
        for (let i = 0; i < cmd.count; i++) {
          const id = this.sent.length;
          const plaintext = `${cmd.from} #${id}`;
          const m: Msg = { id, to: other(cmd.from), wire: this.sessions[cmd.from].encrypt(text(plaintext)), plaintext, opened: 0, lost: false };
          this.sent.push(m);
          this.queue[m.to].push(m);
        }
        return;
      }
      case 'deliver':
      case 'delay': {
        const q = this.queue[cmd.to];
        if (q.length === 0) return;
        const [m] = q.splice(cmd.pick % Math.min(q.length, 30), 1);
        if (cmd.kind === 'delay') this.delayed.push(m!);
        else this.deliver(m!);
        return;
      }
      case 'duplicate': {
        const d = this.done[cmd.to];
        if (d.length === 0) return;
        this.stats.duplicates++;
        const m = d[cmd.pick % d.length]!;
        this.refused(cmd.to, m.wire, ['DUPLICATE_MESSAGE', 'AUTH_FAILED'], `repeat of ${m.plaintext}`);
        return;
      }
      case 'forge': {
        const pool = this.sent.filter((m) => m.to === cmd.to);
        if (pool.length === 0) return;
        this.stats.forgeries++;
        const m = pool[cmd.pick % pool.length]!;
        this.refused(cmd.to, flipBit(m.wire, cmd.bit % (m.wire.length * 8)), null, `forgery of ${m.plaintext}`);
        return;
      }
      case 'junk': {
        // Junk with a valid version/type prefix reaches the trial decryptions.
        const junk = cmd.bytes.slice();
        if (junk.length >= 2) junk.set([1, 2], 0);
        this.refused(cmd.to, junk, null, 'junk');
        return;
      }
    }
  }

  /** A legitimate message arrives. */
  deliver(m: Msg): void {
    const s = this.sessions[m.to];
    const chainsBefore = unsafeDecodeSessionPickle(s.pickle()).state.skipped.length;
    const digest = s.stateDigest();
    const r = onlyParleyErrors(() => s.decrypt(m.wire), `deliver ${m.plaintext}`);
    if (r instanceof ParleyError) {
      // Only the documented chain cap may cost a legitimate message.
      assert.equal(r.code, 'AUTH_FAILED', `${m.plaintext}: ${r.code} ${r.message}`);
      assert.equal(chainsBefore, limits.MAX_SKIPPED_CHAINS, `${m.plaintext} refused while the chain cap was not reached`);
      assert.equal(s.stateDigest(), digest);
      m.lost = true;
      this.stats.lost++;
    } else {
      assert.equal(str(r), m.plaintext, 'decrypts to its own plaintext');
      m.opened++;
      this.stats.delivered++;
    }
    this.done[m.to].push(m);
  }

  /** Something that must not decrypt: typed error, state unchanged. */
  refused(to: Side, wire: Uint8Array, codes: readonly string[] | null, label: string): void {
    const s = this.sessions[to];
    const digest = s.stateDigest();
    const r = onlyParleyErrors(() => s.decrypt(wire), label);
    assert.ok(r instanceof ParleyError, `${label} decrypted to "${r instanceof Uint8Array ? str(r) : r}"`);
    if (codes) assert.ok(codes.includes(r.code), `${label}: ${r.code}`);
    assert.equal(s.stateDigest(), digest, `${label} changed the state`);
  }

  /** Everything still queued or delayed arrives, then the stores must be empty. */
  flush(): void {
    for (const to of ['alice', 'bob'] as const) for (const m of this.queue[to].splice(0)) this.deliver(m);
    for (const m of this.delayed.splice(0)) this.deliver(m);
    for (const m of this.sent) assert.equal(m.opened + (m.lost ? 1 : 0), 1, `${m.plaintext} opened ${m.opened} times`);
    assert.equal(this.sessions.alice.skippedKeyCount, 0, 'alice skipped keys after full delivery');
    assert.equal(this.sessions.bob.skippedKeyCount, 0, 'bob skipped keys after full delivery');
  }
}

describe('properties: random network schedules', () => {
  test('send / deliver (displacement <= 30) / delay / duplicate / forge / junk: exactly-once, nothing forged opens, stores drain', (t) => {
    const totals = { delivered: 0, lost: 0, duplicates: 0, forgeries: 0, turns: 0 };
    fc.assert(
      fc.property(fc.array(command, { minLength: 10, maxLength: 160 }), (cmds) => {
        const net = new Network(establish());
        for (const cmd of cmds) net.run(cmd);
        net.flush();
        for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += net.stats[k];
      }),
      { seed: 0x5eed, numRuns: EXTENDED ? 5000 : 300, endOnFailure: true },
    );
    t.diagnostic(JSON.stringify(totals));
    assert.ok(totals.delivered > 5000, JSON.stringify(totals));
    assert.ok(totals.turns > 500, `ratchet turns: ${totals.turns}`);
    assert.ok(totals.duplicates > 100 && totals.forgeries > 100, JSON.stringify(totals));
  });

  test('a long lossless conversation: 3,000 messages over hundreds of turns, reordered within 30, all open once, stores drain', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.array(fc.nat(29), { minLength: 12, maxLength: 12 })), { minLength: 300, maxLength: 300 }), (turns) => {
        const net = new Network(establish());
        turns.forEach(([count, picks], i) => {
          const from: Side = i % 2 === 0 ? 'alice' : 'bob';
          net.run({ kind: 'send', from, count });
          for (const pick of picks) net.run({ kind: 'deliver', to: other(from), pick });
        });
        net.flush();
        assert.equal(net.stats.lost, 0);
        assert.ok(net.sent.length > 1000);
      }),
      { seed: 7, numRuns: EXTENDED ? 30 : 1 },
    );
  });
});

describe('fuzzing: decoders only ever throw ParleyError', () => {
  const p = (() => {
    let pair: Pair | undefined;
    return () => (pair ??= establish({ oneTimePrekey: true }));
  })();

  test('parseMessage, Session.decrypt and Account.createInboundSession on random and mutated bytes', () => {
    const { a, b, bob, prekeyMessage } = p();
    const samples = [a.encrypt(text('sample')), prekeyMessage, a.encrypt(text('x'.repeat(600)))];
    const digest = b.stateDigest();
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 1200 }),
      fc.tuple(fc.constantFrom(...samples), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 })).map(([s, muts]) => {
        const out = s.slice();
        for (const [pos, x] of muts) out[pos % out.length]! ^= x;
        return out;
      }),
      fc.tuple(fc.constantFrom(...samples), fc.nat(), fc.uint8Array({ maxLength: 300 })).map(([s, cut, tail]) => {
        const out = new Uint8Array((cut % s.length) + tail.length);
        out.set(s.subarray(0, cut % s.length));
        out.set(tail, cut % s.length);
        return out;
      }),
    );
    fc.assert(
      fc.property(bytes, (input) => {
        onlyParleyErrors(() => parseMessage(input), 'parseMessage');
        const r = onlyParleyErrors(() => b.decrypt(input), 'decrypt');
        assert.ok(r instanceof ParleyError, 'a mutated message decrypted');
        if (input.length >= 2 && input[1] === 1) onlyParleyErrors(() => bob.createInboundSession(input), 'createInboundSession');
      }),
      { seed: 0xf022, numRuns: EXTENDED ? 1_000_000 : 10_000 },
    );
    assert.equal(b.stateDigest(), digest);
  });

  test('Session.unpickle and Account.unpickle on random and mutated bytes', () => {
    const { b, alice } = p();
    const sessionPickle = b.pickle();
    const accountPickle = alice.pickle();
    const mutate = (base: Uint8Array) =>
      fc.oneof(
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 6 }).map((muts) => {
          const out = base.slice();
          for (const [pos, x] of muts) out[pos % out.length]! ^= x;
          return out;
        }),
        fc.tuple(fc.nat(), fc.uint8Array({ maxLength: 64 })).map(([cut, tail]) => new Uint8Array([...base.subarray(0, cut % base.length), ...tail])),
      );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), mutate(sessionPickle)), (input) => {
        const r = onlyParleyErrors(() => Session.unpickle(input), 'Session.unpickle');
        if (r instanceof ParleyError) assert.ok(['STORAGE_INTEGRITY', 'UNSUPPORTED_VERSION'].includes(r.code), r.code);
        else {
          onlyParleyErrors(() => r.encrypt(text('x')), 'use after unpickle');
          onlyParleyErrors(() => r.decrypt(sessionPickle), 'use after unpickle');
        }
      }),
      { seed: 0x51c1e, numRuns: EXTENDED ? 1_000_000 : 10_000 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 2000 }), mutate(accountPickle)), (input) => {
        const r = onlyParleyErrors(() => Account.unpickle(input), 'Account.unpickle');
        if (r instanceof ParleyError) assert.ok(['STORAGE_INTEGRITY', 'UNSUPPORTED_VERSION'].includes(r.code), r.code);
      }),
      { seed: 0xacc7, numRuns: EXTENDED ? 1_000_000 : 10_000 },
    );
  });
});
