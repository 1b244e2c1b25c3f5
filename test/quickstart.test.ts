/**
 * The README's quickstart is a test: it runs the real relay (SQLite), the bot in its enclave and
 * a customer, and checks the conversation happened and the relay's view holds no plaintext.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runQuickstart } from '../examples/quickstart/main.js';

test('quickstart: customer and bot talk through the relay, which sees only ciphertext', async () => {
  const lines: string[] = [];
  await runQuickstart((line) => lines.push(line));
  const out = lines.join('\n');
  assert.match(out, /bot: {6}Order #1042 left our warehouse/);
  assert.match(out, /bot: {6}We are open Monday to Friday/);
  assert.match(out, /bot: {6}\{"type":"contact-form"/);
  const relayLines = lines.filter((l) => l.includes('relay stored') || l.includes('relay delivered'));
  assert.ok(relayLines.length >= 8, `relay lines: ${relayLines.length}`);
  const plaintextHex = (s: string) => Buffer.from(s).toString('hex').slice(0, 16);
  for (const l of relayLines) {
    for (const secret of ['order', 'opening', 'warehouse', 'agent']) {
      assert.ok(!l.toLowerCase().includes(secret), `relay line shows plaintext: ${l}`);
      assert.ok(!l.includes(plaintextHex(secret)), `relay line shows plaintext bytes: ${l}`);
    }
  }
  assert.match(out, /safety number \(compare with the bot's\): (\d{5} ){11}\d{5}/);
  assert.match(out, /bot attestation verified against the pinned measurement: yes/);
});
