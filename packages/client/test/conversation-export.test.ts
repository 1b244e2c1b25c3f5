/**
 * `conversation.export()`'s renderer (conversations/export.ts): the JSON holds members, messages,
 * consent and deletion receipts; the HTML page escapes every value (a message with markup stays
 * text), has no script and loads nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildExport } from '../src/conversations/export.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);

test('export: JSON with everything, HTML escaped and self-contained', () => {
  const hostile = '<script>alert("x")</script> & <img src=x onerror=alert(1)>';
  const out = buildExport({
    info: { id: 'C'.repeat(22), owner: A, epoch: 2, hash: '0'.repeat(64), tickets: [], members: [{ deviceId: A, role: 'customer', name: 'Ann <b>' }, { deviceId: B, role: 'bot', name: 'Helper' }] },
    messages: [
      { conversation: 'C'.repeat(22), from: A, id: 'm1', seq: 1, sentAt: 1_000, shared: false, sender: { deviceId: A, role: 'customer', name: 'Ann <b>' }, content: { type: 'text', text: hostile } },
      { conversation: 'C'.repeat(22), from: B, id: 'm2', seq: 1, sentAt: 2_000, shared: false, sender: { deviceId: B, role: 'bot', name: 'Helper' }, content: { type: 'binary', binary: new Uint8Array([1, 2, 3]) } },
    ],
    consents: [{ receipt: { purpose: 'returns <form>', decision: 'granted' }, valid: true, withdrawn: false }],
    erasure: { conversation: 'C'.repeat(22), requestedAt: 3_000, members: [], receipts: [{ member: B, at: 4_000 }], missing: [], archive: 'none' },
    exportedAt: 5_000,
  });
  const doc = JSON.parse(out.json) as { members: unknown[]; messages: { content: { text?: string; base64?: string } }[]; consentReceipts: unknown[]; deletionReceipts: { receipts: { member: string }[] } };
  assert.equal(doc.members.length, 2);
  assert.equal(doc.messages[0]!.content.text, hostile);
  assert.equal(doc.messages[1]!.content.base64, 'AQID');
  assert.equal(doc.consentReceipts.length, 1);
  assert.deepEqual(doc.deletionReceipts.receipts.map((r) => r.member), [B]);

  assert.ok(!out.html.includes('<script'), 'no script element');
  assert.ok(!out.html.includes('<img'), 'markup in a message stays text');
  assert.ok(!out.html.includes('<b>'), 'markup in a name stays text');
  assert.ok(out.html.includes('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img'));
  assert.ok(out.html.includes('returns &lt;form&gt;'));
  assert.ok(!/<[^>]*\b(src|href)=/.test(out.html), 'loads nothing');
  assert.match(out.html, /default-src 'none'/);
});
