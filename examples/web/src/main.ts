/**
 * The support widget: the same `ParleyClient` as in Node, on a sealed IndexedDB store, with one
 * writer tab at a time.
 *
 * Start-up: crypto backend → sealed store → writer lock (another tab has it: wait, say so) →
 * client (identity created on first use, kept across reloads) → history → connect. Any typed
 * error on the way is shown with its code (and, for storage, the record id), never a crash.
 *
 * Trust is the SDK's job, not this page's: the client is created with the org key and the bot
 * measurement pinned in this bundle at build time, and refuses (`UNTRUSTED_IDENTITY`,
 * `ATTESTATION_INVALID`; nothing encrypted, nothing sent) a bot whose certificate or attestation,
 * published with its prekeys on the relay, does not verify against them. The badge only shows
 * that verdict: what `peerCertificate` / `peerAttestation` say was verified, or the typed error of
 * a refused send.
 *
 * The chat runs as a conversation (`client.startConversation(bot)`), so a person can join it:
 * "Talk to a person" (or the bot, when asked for one) opens a ticket at the relay; an agent who
 * claims it appears in a consent dialog (certified name, role, safety number) where the customer
 * chooses what history to share and whether the bot stays (`handoff.ts`, `consent-dialog.ts`).
 * The header lists the members; joins and leaves are noted in the transcript.
 */
import type { Phase, WidgetState } from './widget-state.js';
import { initCrypto, isParleyError, type BackendName, type ParleyError } from '@parley/protocol';
import { ParleyClient, type Conversation, type ConversationMessage, type IncomingMessage } from '@parley/client';
import { IndexedDbStore, acquireWriterLock, writerLockName, type WriterLock } from '@parley/client/browser';
import { ChatHistory } from './history.js';
import { errorReason, errorText } from './error-text.js';
import { RelayPanel } from './relay-panel.js';
import { WidgetView, parseCard, type ChatItem } from './ui.js';
import { Handoff } from './handoff.js';
import { Privacy } from './privacy.js';

declare const __PARLEY_ORG_KEY__: string;
declare const __PARLEY_MEASUREMENT__: string;
declare const __PARLEY_BOT_LABEL__: string;

/**
 * What `/api/config` returns: the "support address", i.e. which device to talk to. Untrusted
 * routing info: whoever answers there must still pass the SDK's checks against the pins.
 */
interface DemoConfig {
  botDeviceId: string;
}

/** Errors by which the SDK refuses a peer (nothing is encrypted to it). */
const TRUST_CODES: ReadonlySet<string> = new Set(['UNTRUSTED_IDENTITY', 'ATTESTATION_INVALID', 'IDENTITY_CHANGED']);

/** One database per widget installation (both demo pages share it, one tab at a time). */
export const DB_NAME = 'parley-support-widget';
const LAST_BOT_KEY = 'app/widget/bot';
/** The id of the current conversation (the SDK keeps the conversation itself). */
const CONVERSATION_KEY = 'app/widget/conversation';
/** The demo's retention policy: a conversation is erased everywhere this many days after it started (shown under "Privacy"). */
const RETENTION_DAYS = 30;
const STARTER_CHIPS = ['Hi!', 'Where is order 1042?', 'Opening hours', 'I want to return an item'];

/**
 * A User Timing mark `parley:<step>` (a name and a time, nothing else): the start-up steps and
 * the first send, which `bench/widget.ts` reads to say where the time to "ready" goes.
 */
function mark(step: string): void {
  performance.mark(`parley:${step}`);
}

export async function start(backend: BackendName): Promise<void> {
  mark('start');
  const state: WidgetState = { phase: 'starting', backend, sent: 0, received: 0, delivered: 0 };
  (window as unknown as { parleyWidget: WidgetState }).parleyWidget = state;
  document.body.dataset.phase = 'starting';
  const setPhase = (p: Phase): void => {
    state.phase = p;
    document.body.dataset.phase = p;
  };

  let client: ParleyClient | undefined;
  let history: ChatHistory | undefined;
  let botId = '';
  /** The SDK's last refusal of the bot, until a send to it succeeds. */
  let refusal: ParleyError | undefined;
  /** Own messages waiting for receipts: the members that have not confirmed yet. */
  const pendingByMsgId = new Map<string, { item: ChatItem; waiting: Set<string> }>();
  /** Receipts that arrived before the send call returned the message id. */
  const earlyReceipts = new Map<string, Set<string>>();
  let conversation: Conversation | undefined;
  let handoff: Handoff | undefined;
  let privacy: Privacy | undefined;
  let store: IndexedDbStore;

  const view = new WidgetView({
    quickReply: (text) => void sendText(text),
  });
  const panel = new RelayPanel();
  panel.connect();
  view.setDetail('backend', backend === 'sodium' ? 'libsodium (WebAssembly)' : 'noble (pure JavaScript, no WebAssembly)');

  const fail = (e: unknown, what: string): void => {
    setPhase('error');
    view.enableInput(false);
    const err = isParleyError(e) ? e : undefined;
    state.errorCode = err?.code ?? 'INTERNAL';
    const record = typeof err?.details?.key === 'string' ? err.details.key : undefined;
    if (record !== undefined) state.errorRecord = record;
    view.setStatus('stopped');
    view.setBadge('pending', 'stopped');
    const text = `${what}: ${errorText(err, record !== undefined ? ` (record "${record}")` : '')}`;
    const storage = err && (err.code === 'STORAGE_INTEGRITY' || err.code === 'STORAGE_QUOTA');
    view.showBanner(text, 'error', storage ? { label: 'Reset this device', run: () => void resetDevice() } : undefined);
  };

  async function resetDevice(): Promise<void> {
    await client?.close().catch(() => undefined);
    lock?.release();
    await IndexedDbStore.destroy(DB_NAME);
    location.reload();
  }

  async function addItem(item: Omit<ChatItem, 'key'>): Promise<ChatItem> {
    const full: ChatItem = { ...item, key: history!.nextKey() };
    view.render(full);
    await history!.put(full);
    return full;
  }

  /**
   * The conversation to send in: the current one while it has another member, else a new one
   * with the bot (the SDK checks the bot against the pins before anything is encrypted to it).
   */
  async function ensureConversation(): Promise<Conversation> {
    const self = client!.deviceId;
    if (conversation && conversation.members.some((m) => m.deviceId !== self)) return conversation;
    conversation = await client!.startConversation(botId, { retentionDays: RETENTION_DAYS });
    mark('conversation-started');
    await store.setMany([[CONVERSATION_KEY, new TextEncoder().encode(conversation.id)]]);
    state.conversationId = conversation.id;
    handoff?.showMembers();
    void privacy?.refresh();
    return conversation;
  }

  async function send(content: string, item: Omit<ChatItem, 'key'>): Promise<void> {
    if (!client) return;
    let shown = await addItem(item);
    try {
      const conv = await ensureConversation();
      mark('conversation');
      const recipients = conv.members.map((m) => m.deviceId).filter((d) => d !== client!.deviceId);
      const result = await conv.send(content);
      mark('sent');
      state.sent++;
      // Delivered once every member it was encrypted to confirmed (end-to-end receipts).
      const failedPeers = new Set(result.failed.map((f) => f.peer));
      const waiting = new Set(recipients.filter((d) => !failedPeers.has(d)));
      for (const peer of earlyReceipts.get(result.id) ?? []) waiting.delete(peer);
      earlyReceipts.delete(result.id);
      shown = { ...shown, msgId: result.id, ...(waiting.size === 0 && failedPeers.size === 0 ? { delivered: true } : {}) };
      if (shown.delivered) state.delivered++;
      else pendingByMsgId.set(result.id, { item: shown, waiting });
      view.render(shown);
      await history!.put(shown);
      for (const f of result.failed) {
        if (f.peer === botId && TRUST_CODES.has(f.error.code)) refused(f.error);
        await addItem({ who: 'system', at: Date.now(), text: `Not delivered to ${handoff?.nameOf(f.peer) ?? 'a member'} (${f.error.code}).` });
      }
      if (refusal && !failedPeers.has(botId)) {
        // The SDK accepted the bot this time (e.g. a substituted bundle is gone): its verdict stands.
        refusal = undefined;
        state.verified = undefined;
        view.showBanner(undefined);
      }
      showTrust();
      showSafetyNumber();
    } catch (e) {
      const code = isParleyError(e) ? e.code : 'INTERNAL';
      shown.failed = code;
      view.render(shown);
      await history!.put(shown);
      if (isParleyError(e) && TRUST_CODES.has(e.code)) refused(e);
      await addItem({ who: 'system', at: Date.now(), text: `Not sent (${code}).` });
    }
  }

  /**
   * The badge, from the SDK's verdict only: the certificate and attestation it verified for the
   * bot (kept with the peer record, so known again after a reload), or nothing yet.
   */
  function showTrust(): void {
    if (!client || refusal) return;
    const cert = client.peerCertificate(botId);
    const att = client.peerAttestation(botId);
    // A re-pinned measurement (new bot deploy) is re-checked by the SDK on the next send.
    if (!cert || !att || att.measurement !== __PARLEY_MEASUREMENT__.toLowerCase()) {
      view.setBadge('pending', 'checked before sending', 'Before your first message is encrypted, the SDK checks the bot\'s org certificate and enclave attestation against the pins in this page. Nothing is sent to a bot that fails.');
      view.setDetail('measurement', 'not checked yet (checked before the first message)');
      return;
    }
    const support = cert.role === 'bot' && cert.label === __PARLEY_BOT_LABEL__;
    state.verified = support;
    view.setDetail('measurement', `${att.measurement} · verified, attested ${new Date(att.issuedAt).toLocaleString()}`);
    view.setBadge(
      support ? 'verified' : 'unverified',
      support ? 'verified' : 'unverified',
      support
        ? `Certified by the pinned org key as bot "${cert.label}" (until ${new Date(cert.expiresAt).toLocaleDateString()}); its enclave attested the pinned measurement.`
        : `Certified as ${cert.role} "${cert.label}", not as the ${__PARLEY_BOT_LABEL__} bot.`,
    );
  }

  /** The SDK refused the bot: say so with the typed error; nothing was sent to it. */
  function refused(e: ParleyError): void {
    refusal = e;
    state.verified = false;
    state.errorCode = e.code;
    const reason = errorReason(e) ? ` (${errorReason(e)})` : '';
    view.setBadge('unverified', 'unverified', errorText(e, reason));
    view.setDetail('measurement', `not verified: ${e.code}${reason}`);
    view.setDetail('safety-number', client?.peerIdentity(botId) ? client.safetyNumber(botId) : 'none: nothing was sent to this bot');
    view.showBanner(`The support bot failed verification (${errorText(e)}). Nothing was sent to it.`, 'error');
  }

  function showSafetyNumber(): void {
    try {
      view.setDetail('safety-number', client!.safetyNumber(botId));
    } catch {
      view.setDetail('safety-number', 'shown after the first message');
    }
  }

  async function sendText(text: string): Promise<void> {
    const t = text.trim();
    if (!t || state.phase !== 'ready') return;
    await send(t, { who: 'me', at: Date.now(), text: t });
  }

  view.composer.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = view.input.value;
    view.input.value = '';
    void sendText(text);
  });

  // 1. Crypto backend. Under a CSP without 'wasm-unsafe-eval' only 'noble' can start.
  try {
    await initCrypto(backend);
    mark('crypto');
  } catch (e) {
    fail(e, 'Crypto backend failed to start');
    return;
  }

  // 2. Where the bot is (untrusted routing info; the SDK checks the bot against the pins).
  let cfg: DemoConfig;
  try {
    const res = await fetch('./api/config');
    if (!res.ok) throw new Error(`config: HTTP ${res.status}`);
    cfg = (await res.json()) as DemoConfig;
    if (typeof cfg?.botDeviceId !== 'string') throw new Error('config: no bot device id');
  } catch (e) {
    fail(e, 'Could not load the widget configuration');
    return;
  }
  mark('config');
  botId = cfg.botDeviceId;
  state.botDeviceId = botId;
  panel.name(botId, 'bot');
  view.setDetail('bot-device', botId);
  view.setDetail('pinned-measurement', __PARLEY_MEASUREMENT__);

  // 3. Sealed storage.
  try {
    store = await IndexedDbStore.open({ dbName: DB_NAME });
  } catch (e) {
    fail(e, 'Stored chat data could not be opened');
    return;
  }
  mark('store');
  view.setDetail('storage', `IndexedDB "${DB_NAME}", AES-256-GCM under a non-extractable key${store.persisted ? ', persistent' : ''}`);

  // 4. One writer per database: another tab of this widget may hold it.
  let lock: WriterLock | undefined;
  lock = await acquireWriterLock(writerLockName(DB_NAME), {
    onWaiting: () => {
      setPhase('waiting-for-tab');
      view.setStatus('open in another tab');
      view.showBanner('This chat is open in another tab. It continues here as soon as you close that tab.');
    },
  });
  view.showBanner(undefined);

  mark('lock');
  // 5. The client (identity created on first use) and the history. The pins make the SDK refuse
  //    any peer without a certificate from the org key (role `bot`) and, so, without an
  //    attestation of the pinned measurement.
  try {
    client = await ParleyClient.create({
      relayUrl: location.origin,
      store,
      // Agents who join through a handoff: staff credentials from the same org key, role agent or supervisor.
      trust: { orgKey: __PARLEY_ORG_KEY__, botMeasurement: __PARLEY_MEASUREMENT__, roles: ['bot'], staffRoles: ['agent', 'supervisor'] },
      transport: { socketOptions: { transports: ['websocket'] } },
    });
    mark('client');
    history = await ChatHistory.load(store);
    mark('history');
  } catch (e) {
    fail(e, isParleyError(e, 'USAGE') ? 'The widget is misconfigured' : 'Stored chat data failed its integrity check');
    return;
  }
  state.deviceId = client.deviceId;
  panel.name(client.deviceId, 'you');
  view.setDetail('my-device', client.deviceId);

  for (const item of history.items) view.render(item);
  for (const f of history.failures) {
    const record = typeof f.details?.key === 'string' ? f.details.key : '?';
    view.render({ key: `failure-${record}`, who: 'system', at: Date.now(), text: `A stored message failed its integrity check and is not shown (${f.code}, record "${record}").` });
    state.errorCode = f.code;
    state.errorRecord = record;
  }
  mark('history-shown');
  const lastBot = await store.get(LAST_BOT_KEY).catch(() => undefined);
  const lastBotId = lastBot ? new TextDecoder().decode(lastBot) : undefined;
  if (lastBotId && lastBotId !== botId) {
    await addItem({ who: 'system', at: Date.now(), text: 'The support bot has a new device. It is verified again before your next message.' });
  }
  await store.setMany([[LAST_BOT_KEY, new TextEncoder().encode(botId)]]);
  mark('bot-noted');
  // The conversation of the last visit, unless the bot in it is not the current bot device.
  const lastConversation = await store.get(CONVERSATION_KEY).catch(() => undefined);
  const resumed = lastConversation ? client.conversation(new TextDecoder().decode(lastConversation)) : undefined;
  if (resumed && !resumed.members.some((m) => m.role === 'bot' && m.deviceId !== botId)) {
    conversation = resumed;
    state.conversationId = resumed.id;
  }
  // Receipts still owed for messages of the last visit: from the members there are now.
  const others = (conversation?.members ?? []).map((m) => m.deviceId).filter((d) => d !== client!.deviceId);
  for (const item of history.items) {
    if (item.msgId && !item.delivered && !item.failed && others.length) pendingByMsgId.set(item.msgId, { item, waiting: new Set(others) });
  }
  mark('resumed');
  handoff = new Handoff({
    client,
    view,
    state,
    botId: () => botId,
    conversation: () => conversation,
    ensureConversation,
    addItem,
    host: document.getElementById('widget')!,
    onMember: (deviceId, name) => panel.name(deviceId, name),
  });
  handoff.showMembers();
  privacy = new Privacy({
    client,
    host: document.getElementById('widget')!,
    after: document.getElementById('trust')!,
    conversation: () => conversation,
    nameOf: (deviceId) => handoff!.nameOf(deviceId),
    note: async (text) => void (await addItem({ who: 'system', at: Date.now(), text })),
    // The SDK erased the conversation: the widget's own transcript of it goes too.
    onErased: async () => {
      await history!.clear();
      view.clear();
      await store.delMany([CONVERSATION_KEY]);
      pendingByMsgId.clear();
      earlyReceipts.clear();
      conversation = undefined;
      delete state.conversationId;
      handoff?.showMembers();
    },
  });
  void privacy.refresh();
  if (history.items.length === 0) view.render({ key: 'chips', who: 'bot', at: Date.now(), card: { type: 'quick-replies', options: STARTER_CHIPS } });

  mark('panels');
  // 6. The badge: what the SDK verified for the bot so far (after a reload: already known).
  showTrust();
  showSafetyNumber();

  mark('trust-shown');
  // 7. Events: messages (consumed only after they are in the history), receipts, errors.
  client.on('delivered', ({ id, peer }) => {
    const pending = pendingByMsgId.get(id);
    if (!pending) {
      // Before the send call returned (kept briefly), or an old message.
      if (earlyReceipts.size < 100) earlyReceipts.set(id, (earlyReceipts.get(id) ?? new Set()).add(peer));
      return;
    }
    pending.waiting.delete(peer);
    if (pending.waiting.size > 0) return;
    pendingByMsgId.delete(id);
    pending.item.delivered = true;
    state.delivered++;
    view.render(pending.item);
    void history!.put(pending.item);
  });
  client.on('error', ({ error, peer }: { error: ParleyError; peer?: string }) => {
    if (peer === botId && TRUST_CODES.has(error.code)) refused(error);
    const record = typeof error.details?.key === 'string' ? ` (record "${error.details.key}")` : '';
    state.errorCode = error.code;
    if (record) state.errorRecord = String(error.details?.key);
    view.render({ key: `err-${Date.now()}-${Math.random()}`, who: 'system', at: Date.now(), text: errorText(error, record) });
  });
  client.on('connected', () => view.setStatus('end-to-end encrypted · online'));
  client.on('disconnected', () => view.setStatus('reconnecting…'));
  void (async () => {
    for await (const m of client.messages()) await onMessage(m);
  })();
  // Conversation messages, one at a time in arrival order (each is in the history before the next).
  let inbox = Promise.resolve();
  client.on('conversationMessage', (m) => {
    inbox = inbox.then(() => onConversationMessage(m)).catch(() => undefined);
  });

  /** A 1:1 message (outside a conversation): only the bot's are shown. */
  async function onMessage(m: IncomingMessage): Promise<void> {
    if (m.from !== botId) return;
    await showBotMessage(m.sentAt, m);
  }

  async function showBotMessage(at: number, m: { type: string; text?: string | undefined; json?: unknown }): Promise<void> {
    state.received++;
    const card = m.type === 'json' ? parseCard(m.json) : undefined;
    await addItem({ who: 'bot', at, ...(m.text !== undefined ? { text: m.text } : {}), ...(card ? { card } : {}) });
    showTrust();
    showSafetyNumber();
  }

  /** A message in a conversation: from the bot, or from an agent (shown with the certified name). */
  async function onConversationMessage(m: ConversationMessage): Promise<void> {
    if (m.from === client!.deviceId) return;
    const role = m.sender.role;
    if (role === 'bot') {
      if (m.from === botId) await showBotMessage(m.sentAt, m.content);
      return;
    }
    if (role !== 'agent' && role !== 'supervisor') return;
    state.received++;
    const c = m.content;
    const text = c.type === 'text' ? c.text : c.type === 'json' ? '(structured message)' : '(attachment)';
    await addItem({ who: 'agent', name: m.sender.name, at: m.sentAt, text });
  }

  try {
    mark('connect');
    await client.connect();
    mark('connected');
  } catch (e) {
    // The client keeps trying in the background; say so and let the user type (sends queue).
    view.setStatus(`offline (${isParleyError(e) ? e.code : 'TRANSPORT'}), retrying…`);
  }
  setPhase('ready');
  view.enableInput(true);
  handoff.enable(true);
  mark('ready');
  window.addEventListener('pagehide', () => {
    void client?.close();
  });
}
