/**
 * The store contract, as node:test tests. Every {@link RelayStore} must pass it:
 * `storeContract('sqlite', () => new SqliteStore(path))`. The Redis store will run it too.
 */
import { test } from 'node:test';
import { purgeSent } from '../src/purge.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ParleyError, type PrekeyUpload } from '@parley/protocol/verify';
import type { MailboxQuota, RelayStore } from '../src/store/types.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));
const dev = () => randomBytes(16).toString('hex');

function fakeUpload(opkIds: number[], spkId = 1): PrekeyUpload {
  return {
    identity: { signingKey: rnd(32), dhKey: rnd(32), binding: rnd(64) },
    signedPrekey: { id: spkId, createdAt: 1_700_000_000_000 + spkId, publicKey: rnd(32), signature: rnd(64) },
    oneTimePrekeys: opkIds.map((id) => ({ id, publicKey: rnd(32) })),
  };
}

/** Asserts a `STORAGE_QUOTA` refusal naming `quota`. */
async function refused(p: Promise<unknown>, quota: string, reserved = false): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ParleyError, String(e));
    assert.equal(e.code, 'STORAGE_QUOTA');
    assert.equal(e.details?.['quota'], quota);
    assert.equal(e.details?.['reserved'] === true, reserved);
    assert.equal(typeof e.details?.['max'], 'number');
    return true;
  });
}

const NO_LIMIT = 1_000_000;
const quota = (q: Partial<MailboxQuota>): MailboxQuota =>
  ({ perPair: NO_LIMIT, perRecipient: NO_LIMIT, reserve: 0, reservePerSender: 0, perSender: NO_LIMIT, total: NO_LIMIT, ...q });

/** Registers the contract tests for stores made by `make` (each test gets a fresh store). */
export function storeContract(name: string, make: () => Promise<RelayStore> | RelayStore): void {
  const withStore = (title: string, fn: (s: RelayStore) => Promise<void>) =>
    test(`store contract [${name}]: ${title}`, async () => {
      const s = await make();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  withStore('purge (erasure): a sender\'s queued envelopes by id go; others\' and other ids stay', async (s) => {
    const to = dev();
    const me = dev();
    const other = dev();
    for (const [from, id] of [[me, 'a1'], [me, 'a2'], [other, 'a1'], [me, 'a3']] as const) {
      await s.enqueue({ to, from, id, envelope: new Uint8Array([1, 2, 3]), receivedAt: Date.now() });
    }
    assert.equal(await purgeSent(s, me, to, ['a1', 'a2', 'zz']), 2);
    const left = await s.listPending(to, 0, 10);
    assert.deepEqual(left.map((m) => `${m.from === me ? 'me' : 'other'}:${m.id}`), ['other:a1', 'me:a3']);
    await s.compact?.();
    assert.equal(await s.countPending(to), 2);
    assert.equal(await purgeSent(s, other, to, []), 0);
  });

  withStore('a bundle of an unknown device is undefined', async (s) => {
    assert.equal(await s.takeBundle(dev()), undefined);
    assert.equal(await s.countOneTimePrekeys(dev()), 0);
  });

  withStore('bundles hand out each OPK once, oldest first, then fall back to SPK only', async (s) => {
    const d = dev();
    const up = fakeUpload([5, 3, 9]);
    assert.equal(await s.putPrekeys(d, up), 3);
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await s.takeBundle(d);
      assert.ok(r);
      assert.deepEqual([...r.bundle.identity.signingKey], [...up.identity.signingKey]);
      assert.deepEqual([...r.bundle.signedPrekey.signature], [...up.signedPrekey.signature]);
      assert.equal(r.bundle.signedPrekey.createdAt, up.signedPrekey.createdAt);
      ids.push(r.bundle.oneTimePrekey!.id);
      assert.equal(r.remaining, 2 - i);
    }
    assert.deepEqual(ids, [5, 3, 9]);
    const last = await s.takeBundle(d);
    assert.ok(last);
    assert.equal(last.bundle.oneTimePrekey, undefined);
    assert.equal(last.bundle.signedPrekey.id, 1);
  });

  withStore('a re-upload replaces the SPK, appends new OPKs and never revives a used OPK id', async (s) => {
    const d = dev();
    await s.putPrekeys(d, fakeUpload([1, 2]));
    const first = await s.takeBundle(d);
    assert.equal(first!.bundle.oneTimePrekey!.id, 1);
    const again = fakeUpload([1, 2, 3], 7);
    assert.equal(await s.putPrekeys(d, again), 2); // 2 still pending, 3 new, 1 already used
    const ids = [(await s.takeBundle(d))!, (await s.takeBundle(d))!];
    assert.deepEqual(ids.map((b) => b.bundle.oneTimePrekey!.id), [2, 3]);
    assert.equal(ids[0]!.bundle.signedPrekey.id, 7);
    assert.equal((await s.takeBundle(d))!.bundle.oneTimePrekey, undefined);
  });

  withStore('concurrent takes never return the same OPK', async (s) => {
    const d = dev();
    await s.putPrekeys(d, fakeUpload(Array.from({ length: 50 }, (_, i) => i + 1)));
    const results = await Promise.all(Array.from({ length: 80 }, () => s.takeBundle(d)));
    const ids = results.map((r) => r!.bundle.oneTimePrekey?.id).filter((x) => x !== undefined);
    assert.equal(ids.length, 50);
    assert.equal(new Set(ids).size, 50);
  });

  withStore('enqueue is idempotent on (from, id) while pending; seqs increase per recipient', async (s) => {
    const to = dev();
    const from = dev();
    const a = await s.enqueue({ to, from, id: 'm1', envelope: rnd(10), receivedAt: 1 });
    const b = await s.enqueue({ to, from, id: 'm2', envelope: rnd(10), receivedAt: 2 });
    const retry = await s.enqueue({ to, from, id: 'm1', envelope: rnd(10), receivedAt: 3 });
    assert.equal(a.duplicate, false);
    assert.ok(a.seq > 0 && b.seq > a.seq);
    assert.deepEqual(retry, { seq: a.seq, duplicate: true });
    // Another sender may reuse the id.
    const other = await s.enqueue({ to, from: dev(), id: 'm1', envelope: rnd(10), receivedAt: 4 });
    assert.equal(other.duplicate, false);
    assert.equal(await s.countPending(to), 3);
    // The same sender may send the same id to another recipient (fan-out): stored, not a retry.
    const second = dev();
    const fanout = await s.enqueue({ to: second, from, id: 'm1', envelope: rnd(10), receivedAt: 5 });
    assert.equal(fanout.duplicate, false);
    assert.notEqual(fanout.seq, a.seq);
    assert.deepEqual((await s.listPending(second, 0, 10)).map((m) => [m.from, m.id]), [[from, 'm1']]);
    assert.deepEqual(await s.enqueue({ to: second, from, id: 'm1', envelope: rnd(10), receivedAt: 6 }), { seq: fanout.seq, duplicate: true });
    // Deleting one recipient's copy leaves the other's dedupe as it was.
    await s.deleteMessages(to, [a.seq]);
    assert.deepEqual(await s.enqueue({ to: second, from, id: 'm1', envelope: rnd(10), receivedAt: 7 }), { seq: fanout.seq, duplicate: true });
  });

  withStore('listPending pages in seq order and returns the stored bytes', async (s) => {
    const to = dev();
    const from = dev();
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 7; i++) {
      const envelope = rnd(1 + i * 100);
      sent.push(envelope);
      await s.enqueue({ to, from, id: `id${i}`, envelope, receivedAt: 1000 + i });
      await s.enqueue({ to: dev(), from, id: `other${i}`, envelope: rnd(3), receivedAt: 1 });
    }
    const p1 = await s.listPending(to, 0, 4);
    const p2 = await s.listPending(to, p1.at(-1)!.seq, 4);
    const all = [...p1, ...p2];
    assert.equal(p1.length, 4);
    assert.equal(p2.length, 3);
    assert.deepEqual(all.map((m) => m.id), sent.map((_, i) => `id${i}`));
    all.forEach((m, i) => {
      assert.deepEqual([...m.envelope], [...sent[i]!]);
      assert.equal(m.from, from);
      assert.equal(m.to, to);
      assert.equal(m.receivedAt, 1000 + i);
    });
    assert.ok(all.every((m, i) => i === 0 || m.seq > all[i - 1]!.seq));
  });

  withStore('deleteMessages deletes only the recipient\'s own messages', async (s) => {
    const to = dev();
    const eve = dev();
    const from = dev();
    const m1 = await s.enqueue({ to, from, id: 'a', envelope: rnd(5), receivedAt: 1 });
    const m2 = await s.enqueue({ to, from, id: 'b', envelope: rnd(5), receivedAt: 1 });
    assert.equal(await s.deleteMessages(eve, [m1.seq, m2.seq]), 0);
    assert.equal(await s.deleteMessages(to, [m1.seq, 999_999]), 1);
    assert.equal(await s.deleteMessages(to, [m1.seq]), 0);
    assert.deepEqual((await s.listPending(to, 0, 10)).map((m) => m.seq), [m2.seq]);
    assert.equal(await s.queueDepth(), 1);
  });

  withStore('takeBundle with oneTimePrekey false consumes none (the relay\'s per-target rate, C20b)', async (s) => {
    const d = dev();
    await s.putPrekeys(d, fakeUpload([1, 2]));
    const none = await s.takeBundle(d, { oneTimePrekey: false });
    assert.ok(none);
    assert.equal(none.bundle.oneTimePrekey, undefined);
    assert.equal(none.bundle.signedPrekey.id, 1);
    assert.equal(none.remaining, 2);
    assert.equal((await s.takeBundle(d))!.bundle.oneTimePrekey!.id, 1);
    assert.equal(await s.countOneTimePrekeys(d), 1);
  });

  withStore('quotas (R14): per pair, per sender, in total; a retry is a duplicate even at a quota; acks free room', async (s) => {
    const to = dev();
    const from = dev();
    const q = quota({ perPair: 3, perSender: 5, total: 8 });
    const seqs: number[] = [];
    for (let i = 0; i < 3; i++) seqs.push((await s.enqueue({ to, from, id: `p${i}`, envelope: rnd(4), receivedAt: i }, q)).seq);
    await refused(s.enqueue({ to, from, id: 'p3', envelope: rnd(4), receivedAt: 3 }, q), 'pair');
    // A retry of a stored message is answered as before, whatever the quotas.
    assert.deepEqual(await s.enqueue({ to, from, id: 'p0', envelope: rnd(4), receivedAt: 4 }, q), { seq: seqs[0], duplicate: true });
    // Another recipient: same sender, up to its total.
    const other = dev();
    await s.enqueue({ to: other, from, id: 'o0', envelope: rnd(4), receivedAt: 5 }, q);
    await s.enqueue({ to: other, from, id: 'o1', envelope: rnd(4), receivedAt: 5 }, q);
    await refused(s.enqueue({ to: dev(), from, id: 'o2', envelope: rnd(4), receivedAt: 5 }, q), 'sender');
    // Other senders, up to the total.
    for (let i = 0; i < 3; i++) await s.enqueue({ to, from: dev(), id: `x${i}`, envelope: rnd(4), receivedAt: 6 }, q);
    await refused(s.enqueue({ to: dev(), from: dev(), id: 'x9', envelope: rnd(4), receivedAt: 6 }, q), 'total');
    // Without a quota argument nothing is refused (callers that do their own checks).
    await s.enqueue({ to, from, id: 'free', envelope: rnd(4), receivedAt: 7 });
    assert.equal(await s.queueDepth(), 9);
    // Acked messages leave the counts: the pair has room again.
    assert.equal(await s.deleteMessages(to, [seqs[0]!, seqs[1]!]), 2);
    await s.enqueue({ to, from, id: 'p4', envelope: rnd(4), receivedAt: 8 }, quota({ perPair: 3 }));
    await refused(s.enqueue({ to, from, id: 'p5', envelope: rnd(4), receivedAt: 8 }, quota({ perPair: 3 })), 'pair');
  });

  withStore('quotas (R14): per recipient, with the last places reserved for senders with few pending', async (s) => {
    const to = dev();
    // 10 places; the last 4 only for senders with fewer than 2 pending for this recipient.
    const q = quota({ perRecipient: 10, reserve: 4, reservePerSender: 2, perPair: 5 });
    const [a, b] = [dev(), dev()];
    for (let i = 0; i < 5; i++) await s.enqueue({ to, from: a, id: `a${i}`, envelope: rnd(4), receivedAt: 1 }, q);
    await refused(s.enqueue({ to, from: a, id: 'a5', envelope: rnd(4), receivedAt: 1 }, q), 'pair');
    await s.enqueue({ to, from: b, id: 'b0', envelope: rnd(4), receivedAt: 1 }, q); // 6 = the shared part is full
    await s.enqueue({ to, from: b, id: 'b1', envelope: rnd(4), receivedAt: 1 }, q); // b had 1 < 2: admitted
    await refused(s.enqueue({ to, from: b, id: 'b2', envelope: rnd(4), receivedAt: 1 }, q), 'recipient', true);
    // Fresh senders still get in, two each, up to the hard cap.
    const c = dev();
    await s.enqueue({ to, from: c, id: 'c0', envelope: rnd(4), receivedAt: 1 }, q);
    await s.enqueue({ to, from: c, id: 'c1', envelope: rnd(4), receivedAt: 1 }, q);
    await refused(s.enqueue({ to, from: c, id: 'c2', envelope: rnd(4), receivedAt: 1 }, q), 'recipient', true);
    await s.enqueue({ to, from: dev(), id: 'd0', envelope: rnd(4), receivedAt: 1 }, q);
    assert.equal(await s.countPending(to), 10);
    await refused(s.enqueue({ to, from: dev(), id: 'e0', envelope: rnd(4), receivedAt: 1 }, q), 'recipient');
  });

  withStore('time-to-live (R14): expired messages are skipped on read and purged with their dedupe and counts', async (s) => {
    const to = dev();
    const from = dev();
    const old = [];
    for (let i = 0; i < 5; i++) old.push(await s.enqueue({ to, from, id: `old${i}`, envelope: rnd(4), receivedAt: 100 + i }));
    const fresh = await s.enqueue({ to, from, id: 'fresh', envelope: rnd(4), receivedAt: 1000 });
    await s.enqueue({ to: dev(), from, id: 'elsewhere', envelope: rnd(4), receivedAt: 50 });
    // Skipped on read: a page of 1 from the start finds the fresh one (not a short page).
    assert.deepEqual((await s.listPending(to, 0, 1, 500)).map((m) => m.id), ['fresh']);
    assert.deepEqual((await s.listPending(to, 0, 10, 500)).map((m) => m.id), ['fresh']);
    assert.equal((await s.listPending(to, 0, 10)).length, 6, 'without minReceivedAt nothing is skipped');
    // Purged oldest first, in batches.
    assert.ok(s.purgeExpired, 'the store purges');
    assert.equal(await s.purgeExpired!(500, 4), 4);
    assert.equal(await s.purgeExpired!(500, 4), 2);
    assert.equal(await s.purgeExpired!(500, 4), 0);
    assert.equal(await s.countPending(to), 1);
    assert.equal(await s.queueDepth(), 1);
    assert.deepEqual((await s.listPending(to, 0, 10)).map((m) => m.seq), [fresh.seq]);
    // Dedupe and counts went with them: the same id is stored anew, within a pair quota of 2.
    const again = await s.enqueue({ to, from, id: 'old0', envelope: rnd(4), receivedAt: 2000 }, quota({ perPair: 2 }));
    assert.equal(again.duplicate, false);
    assert.notEqual(again.seq, old[0]!.seq);
    await refused(s.enqueue({ to, from, id: 'old1', envelope: rnd(4), receivedAt: 2000 }, quota({ perPair: 2 })), 'pair');
  });

  withStore('statements: certificate and attestation are stored byte for byte beside the bundle', async (s) => {
    const d = dev();
    const certificate = rnd(139);
    const attestation = rnd(121);
    await s.putPrekeys(d, { ...fakeUpload([1, 2]), certificate, attestation });
    const first = await s.takeBundle(d);
    assert.ok(first);
    assert.deepEqual([...first.certificate!], [...certificate]);
    assert.deepEqual([...first.attestation!], [...attestation]);
    assert.equal(first.bundle.oneTimePrekey!.id, 1);
    // The bundle object itself is unchanged: the statements are beside it.
    assert.equal((first.bundle as { certificate?: unknown }).certificate, undefined);
    // getIdentity consumes no OPK.
    const before = await s.countOneTimePrekeys(d);
    const id = await s.getIdentity(d);
    assert.ok(id);
    assert.deepEqual([...id.identity.signingKey], [...first.bundle.identity.signingKey]);
    assert.deepEqual([...id.identity.binding], [...first.bundle.identity.binding]);
    assert.deepEqual([...id.certificate!], [...certificate]);
    assert.deepEqual([...id.attestation!], [...attestation]);
    assert.equal(await s.countOneTimePrekeys(d), before);
    assert.equal(await s.getIdentity(dev()), undefined);
  });

  withStore('statements: absent keeps, new bytes replace, empty removes; devices without any have none', async (s) => {
    const d = dev();
    const up = fakeUpload([1, 2, 3, 4]);
    await s.putPrekeys(d, up);
    const none = await s.takeBundle(d);
    assert.ok(none);
    assert.equal('certificate' in none, false);
    assert.equal('attestation' in none, false);
    const cert = rnd(200);
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [], certificate: cert });
    // A top-up without statements keeps them.
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [{ id: 9, publicKey: rnd(32) }] });
    let b = await s.takeBundle(d);
    assert.deepEqual([...b!.certificate!], [...cert]);
    assert.equal(b!.attestation, undefined);
    // A fresh attestation replaces the old one; the certificate stays.
    const att1 = rnd(121);
    const att2 = rnd(121);
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [], attestation: att1 });
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [], attestation: att2 });
    b = await s.takeBundle(d);
    assert.deepEqual([...b!.attestation!], [...att2]);
    assert.deepEqual([...b!.certificate!], [...cert]);
    // Empty removes.
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [], certificate: new Uint8Array(0) });
    const id = await s.getIdentity(d);
    assert.equal(id!.certificate, undefined);
    assert.deepEqual([...id!.attestation!], [...att2]);
    // Another device's statements are its own.
    const other = dev();
    await s.putPrekeys(other, fakeUpload([1]));
    assert.equal((await s.getIdentity(other))!.attestation, undefined);
  });

  withStore('statements: a release manifest list is kept, replaced and removed like the others', async (s) => {
    const d = dev();
    const up = fakeUpload([1, 2]);
    const list1 = rnd(600);
    const list2 = rnd(8209);
    await s.putPrekeys(d, { ...up, manifests: list1 });
    assert.deepEqual([...(await s.takeBundle(d))!.manifests!], [...list1]);
    // Kept by a top-up and by an upload that changes another statement.
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [], attestation: rnd(121) });
    assert.deepEqual([...(await s.getIdentity(d))!.manifests!], [...list1]);
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [], manifests: list2 });
    const b = await s.takeBundle(d);
    assert.deepEqual([...b!.manifests!], [...list2]);
    assert.equal(b!.attestation!.length, 121);
    await s.putPrekeys(d, { ...up, oneTimePrekeys: [], manifests: new Uint8Array(0) });
    const id = await s.getIdentity(d);
    assert.equal('manifests' in id!, false);
    assert.equal(id!.attestation!.length, 121, 'removing the manifests keeps the attestation');
  });

  withStore('api keys: stored by hash, found while active, revoked once, listed', async (s) => {
    await s.putApiKey({ id: 'k1', hash: 'h1', label: 'bot one', createdAt: 10 });
    await s.putApiKey({ id: 'k2', hash: 'h2', label: '', createdAt: 11 });
    await assert.rejects(s.putApiKey({ id: 'k3', hash: 'h1', label: '', createdAt: 12 }));
    assert.equal((await s.findApiKey('h1'))?.id, 'k1');
    assert.equal(await s.findApiKey('nope'), undefined);
    assert.equal(await s.revokeApiKey('k1', 20), true);
    assert.equal(await s.revokeApiKey('k1', 21), false);
    assert.equal(await s.revokeApiKey('missing', 21), false);
    assert.equal(await s.findApiKey('h1'), undefined);
    // Revoked keys are kept: a login with one is refused as revoked, not as unknown.
    assert.deepEqual(await s.findApiKey('h1', { includeRevoked: true }), { id: 'k1', hash: 'h1', label: 'bot one', createdAt: 10, revokedAt: 20 });
    assert.deepEqual(await s.findApiKey('h2', { includeRevoked: true }), { id: 'k2', hash: 'h2', label: '', createdAt: 11 });
    assert.equal(await s.findApiKey('nope', { includeRevoked: true }), undefined);
    const list = await s.listApiKeys();
    assert.deepEqual(list.map((r) => [r.id, r.revokedAt]), [['k1', 20], ['k2', undefined]]);
  });

  withStore('revocation lists: one per issuer, kept only when the sequence grows', async (s) => {
    assert.deepEqual(await s.listRevocationLists(), []);
    const [a1, a2, a3, b1] = [rnd(100), rnd(120), rnd(90), rnd(80)];
    assert.equal(await s.putRevocationList('bb', 1, b1), true);
    assert.equal(await s.putRevocationList('aa', 2, a1), true);
    assert.equal(await s.putRevocationList('aa', 2, a2), false, 'same sequence: stale');
    assert.equal(await s.putRevocationList('aa', 1, a2), false, 'lower sequence: stale');
    let lists = await s.listRevocationLists();
    assert.deepEqual(lists.map((l) => [l.issuer, l.sequence, [...l.list]]), [['aa', 2, [...a1]], ['bb', 1, [...b1]]]);
    assert.equal(await s.putRevocationList('aa', 10, a3), true);
    lists = await s.listRevocationLists();
    assert.deepEqual(lists.map((l) => [l.issuer, l.sequence, [...l.list]]), [['aa', 10, [...a3]], ['bb', 1, [...b1]]]);
  });

  withStore('device roles: the last ones set, undefined for an unknown device', async (s) => {
    const d = dev();
    assert.equal(await s.getDeviceRoles(d), undefined);
    await s.setDeviceRoles(d, ['customer']);
    assert.deepEqual(await s.getDeviceRoles(d), ['customer']);
    await s.setDeviceRoles(d, ['agent', 'supervisor']);
    assert.deepEqual(await s.getDeviceRoles(d), ['agent', 'supervisor']);
    assert.equal(await s.getDeviceRoles(dev()), undefined);
  });

  const tid = () => randomBytes(16).toString('base64url');

  withStore('tickets: open is idempotent on (customer, ref) while open; list oldest first, by queue; per-customer limit', async (s) => {
    const [c1, c2, bot] = [dev(), dev(), dev()];
    const t1 = { id: tid(), queue: 'billing', customer: c1, ref: 'r1', notify: bot, openedAt: 100 };
    const first = await s.openTicket(t1);
    assert.deepEqual(first, { ok: true, existing: false, ticket: { ...t1, waitingSince: 100, state: 'waiting' } });
    const again = await s.openTicket({ ...t1, id: tid(), queue: 'other', openedAt: 200 });
    assert.deepEqual(again, { ok: true, existing: true, ticket: { ...t1, waitingSince: 100, state: 'waiting' } }, 'the open one, unchanged');
    const t2 = { id: tid(), queue: 'sales', customer: c2, ref: 'r1', openedAt: 50 };
    assert.equal((await s.openTicket(t2)).ok, true, 'the same ref of another customer is another ticket');
    assert.deepEqual(await s.getTicket(t2.id), { ...t2, waitingSince: 50, state: 'waiting' }, 'no notify field when none');
    assert.equal(await s.getTicket(tid()), undefined);
    assert.deepEqual((await s.listTickets()).map((t) => t.id), [t2.id, t1.id]);
    assert.deepEqual((await s.listTickets('billing')).map((t) => t.id), [t1.id]);
    assert.deepEqual((await s.listTickets(undefined, 1)).map((t) => t.id), [t2.id]);
    assert.deepEqual(await s.listTickets('nobody'), []);
    assert.equal(await s.countWaitingTickets(), 2);
    assert.deepEqual(await s.openTicket({ id: tid(), queue: 'billing', customer: c1, ref: 'r2', openedAt: 300 }, 1), { ok: false, open: 1 });
    assert.equal((await s.openTicket({ id: tid(), queue: 'billing', customer: c1, ref: 'r1', openedAt: 300 }, 1)).ok, true, 'idempotent open is not refused');
    assert.equal((await s.openTicket({ id: tid(), queue: 'billing', customer: c1, ref: 'r2', openedAt: 300 }, 2)).ok, true);
  });

  withStore('tickets: claim once (same agent again: ok), release by a party only, close by a party only', async (s) => {
    const [c, a, b] = [dev(), dev(), dev()];
    const t = { id: tid(), queue: 'billing', customer: c, ref: 'r', openedAt: 100 };
    await s.openTicket(t);
    assert.deepEqual(await s.claimTicket(tid(), a, 1), { ok: false }, 'no such ticket');
    const won = await s.claimTicket(t.id, a, 150);
    assert.deepEqual(won, { ok: true, ticket: { ...t, waitingSince: 100, state: 'claimed', claimedBy: a, claimedAt: 150 } });
    assert.deepEqual(await s.claimTicket(t.id, a, 160), won, 'the claimant again: ok, unchanged');
    const lost = await s.claimTicket(t.id, b, 170);
    assert.equal(lost.ok, false);
    assert.equal(lost.ticket?.claimedBy, a);
    assert.equal(await s.countWaitingTickets(), 0);
    assert.deepEqual(await s.releaseTicket(t.id, b, 180), { ok: false, ticket: won.ticket }, 'not a party: nothing changes');
    const released = await s.releaseTicket(t.id, a, 200, 'escalations');
    assert.deepEqual(released, { ok: true, ticket: { ...t, queue: 'escalations', waitingSince: 200, state: 'waiting' } });
    assert.equal(await s.countWaitingTickets(), 1);
    assert.equal((await s.claimTicket(t.id, b, 210)).ok, true, 'a released ticket can be claimed by another');
    assert.equal((await s.releaseTicket(t.id, c, 220)).ok, true, 'the customer releases (declined)');
    assert.deepEqual(await s.closeTicket(t.id, a), { ok: false, ticket: { ...t, queue: 'escalations', waitingSince: 220, state: 'waiting' } }, 'a former claimant is no party');
    assert.deepEqual(await s.closeTicket(tid(), c), { ok: false });
    assert.equal((await s.closeTicket(t.id, c)).ok, true);
    assert.equal(await s.getTicket(t.id), undefined);
    assert.equal(await s.countWaitingTickets(), 0);
    const reopened = await s.openTicket({ ...t, id: tid(), openedAt: 300 });
    assert.ok(reopened.ok && !reopened.existing && reopened.ticket.openedAt === 300, 'after close, the ref opens a new ticket');
  });

  withStore('tickets: claims racing for one ticket have exactly one winner', async (s) => {
    const t = { id: tid(), queue: 'q', customer: dev(), ref: 'r', openedAt: 1 };
    await s.openTicket(t);
    const agents = Array.from({ length: 20 }, dev);
    const results = await Promise.all(agents.map((a) => s.claimTicket(t.id, a, 2)));
    const winners = results.filter((r) => r.ok);
    assert.equal(winners.length, 1);
    assert.equal((await s.getTicket(t.id))?.claimedBy, winners[0]!.ticket!.claimedBy);
  });

  withStore('tickets: unclaimed waiting periods are due once, a release starts a new period', async (s) => {
    const [c, a] = [dev(), dev()];
    const t1 = { id: tid(), queue: 'q', customer: c, ref: 'r1', openedAt: 100 };
    const t2 = { id: tid(), queue: 'q', customer: c, ref: 'r2', openedAt: 150 };
    const t3 = { id: tid(), queue: 'q', customer: c, ref: 'r3', openedAt: 400 };
    for (const t of [t1, t2, t3]) await s.openTicket(t);
    await s.claimTicket(t2.id, a, 160);
    assert.deepEqual((await s.dueUnclaimed(300, 10)).map((t) => t.id), [t1.id], 'waiting and old enough only');
    assert.deepEqual((await s.dueUnclaimed(500, 1)).map((t) => t.id), [t1.id], 'oldest first, bounded');
    assert.equal(await s.markUnclaimedNotified(t1.id, 99), false, 'another period');
    const marks = await Promise.all([s.markUnclaimedNotified(t1.id, 100), s.markUnclaimedNotified(t1.id, 100)]);
    assert.deepEqual(marks.sort(), [false, true], 'one marker wins');
    assert.deepEqual((await s.dueUnclaimed(500, 10)).map((t) => t.id), [t3.id]);
    assert.equal(await s.markUnclaimedNotified(t2.id, 150), false, 'claimed');
    await s.releaseTicket(t1.id, c, 600);
    assert.deepEqual((await s.dueUnclaimed(550, 10)).map((t) => t.id), [t3.id], 'the new period is not due yet');
    assert.deepEqual((await s.dueUnclaimed(700, 10)).map((t) => t.id), [t3.id, t1.id]);
    assert.equal(await s.markUnclaimedNotified(t1.id, 600), true, 'a new period is reported again');
    await s.releaseTicket(t2.id, a, 800);
    assert.deepEqual((await s.dueUnclaimed(900, 10)).map((t) => t.id), [t3.id, t2.id], 'a released claim waits anew');
    await s.closeTicket(t3.id, c);
    assert.deepEqual((await s.dueUnclaimed(900, 10)).map((t) => t.id), [t2.id]);
  });
}
