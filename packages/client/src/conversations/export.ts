/**
 * `conversation.export()` (the customer's access right): the conversation as JSON and as one
 * self-contained, readable HTML page (no script, no external resource, every value escaped):
 * members, messages, consent receipts and deletion receipts.
 */
import type { ConversationInfo, ConversationMessage } from '@parley/engine';
import type { ConversationErasure } from './erasure.js';

/** What {@link buildExport} renders. */
export interface ExportInput {
  readonly info: ConversationInfo;
  readonly messages: readonly ConversationMessage[];
  /** Consent receipts as `conversation.consents()` lists them (rendered as JSON). */
  readonly consents: readonly unknown[];
  /** The erasure status with its deletion receipts, when one was asked for. */
  readonly erasure?: ConversationErasure;
  /** When the export was made, ms since the epoch. */
  readonly exportedAt: number;
}

/** The exported conversation: `json` (UTF-8 JSON text) and `html` (a complete page). */
export interface ConversationExport {
  readonly json: string;
  readonly html: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attributes. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function bytesToBase64(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s);
}

/** A message as exported: binary content as base64. */
function plainMessage(m: ConversationMessage): Record<string, unknown> {
  const c = m.content;
  const content = c.type === 'text' ? { type: 'text', text: c.text } : c.type === 'json' ? { type: 'json', json: c.json } : { type: 'binary', base64: bytesToBase64(c.binary) };
  return { id: m.id, from: m.from, sender: { name: m.sender.name, role: m.sender.role }, sentAt: new Date(m.sentAt).toISOString(), shared: m.shared, content };
}

function replacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? bytesToBase64(value) : value;
}

/** Builds the JSON and the HTML page of a conversation. */
export function buildExport(input: ExportInput): ConversationExport {
  const doc = {
    format: 'parley-conversation-export/1',
    exportedAt: new Date(input.exportedAt).toISOString(),
    conversation: { id: input.info.id, owner: input.info.owner, epoch: input.info.epoch },
    members: input.info.members.map((m) => ({ deviceId: m.deviceId, role: m.role, name: m.name })),
    messages: input.messages.map(plainMessage),
    consentReceipts: input.consents,
    deletionReceipts: input.erasure ? { requestedAt: new Date(input.erasure.requestedAt).toISOString(), receipts: input.erasure.receipts, missing: input.erasure.missing } : null,
  };
  const json = JSON.stringify(doc, replacer, 2);
  const e = escapeHtml;
  const text = (m: ConversationMessage): string =>
    m.content.type === 'text' ? m.content.text : m.content.type === 'json' ? JSON.stringify(m.content.json) : `[${m.content.binary.length} bytes]`;
  const rows = input.messages
    .map((m) => `<tr><td>${e(new Date(m.sentAt).toISOString())}</td><td>${e(m.sender.name)} <small>(${e(m.sender.role)})</small></td><td class="t">${e(text(m))}</td></tr>`)
    .join('\n');
  const members = input.info.members.map((m) => `<li>${e(m.name)} <small>(${e(m.role)}, ${e(m.deviceId)})</small></li>`).join('\n');
  const erasure = input.erasure
    ? `<p>Requested ${e(new Date(input.erasure.requestedAt).toISOString())}. Receipts: ${input.erasure.receipts.map((r) => `${e(r.member)} at ${e(new Date(r.at).toISOString())}`).join(', ') || 'none'}. Missing: ${input.erasure.missing.map(e).join(', ') || 'none'}.</p>`
    : '<p>No erasure was asked for.</p>';
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Conversation ${e(input.info.id)}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}table{border-collapse:collapse;width:100%}td{border-top:1px solid #ddd;padding:.3rem .5rem;vertical-align:top}td.t{white-space:pre-wrap}small{color:#666}pre{background:#f5f5f5;padding:.5rem;overflow:auto;white-space:pre-wrap}</style>
</head><body>
<h1>Conversation ${e(input.info.id)}</h1>
<p>Exported ${e(doc.exportedAt)}.</p>
<h2>Members</h2><ul>
${members}
</ul>
<h2>Messages</h2><table>
${rows}
</table>
<h2>Consent receipts</h2><pre>${e(JSON.stringify(input.consents, replacer, 2))}</pre>
<h2>Deletion receipts</h2>${erasure}
</body></html>
`;
  return { json, html };
}
