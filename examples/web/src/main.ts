/**
 * The support widget: the same `ParleyClient` as in Node, on a sealed IndexedDB store, with one
 * writer tab at a time.
 *
 * Start-up: crypto backend → sealed store → writer lock (another tab has it: wait, say so) →
 * client (identity created on first use, kept across reloads) → history → connect → check the
 * bot against the pinned org key and measurement. Any typed error on the way is shown with its
 * code (and, for storage, the record id), never a crash.
 */
import { initCrypto, isParleyError, type BackendName, type ParleyError } from '@parley/protocol';
import { ParleyClient, ConversationEngine, type IncomingMessage } from '@parley/client';
import { IndexedDbStore, acquireWriterLock, writerLockName, type WriterLock } from '@parley/client/browser';
import { ChatHistory } from './history.js';
import { RelayPanel } from './relay-panel.js';
import { checkBot, type DemoConfig } from './trust.js';
import { WidgetView, parseCard, type ChatItem } from './ui.js';

declare const __PARLEY_ORG_KEY__: string;
declare const __PARLEY_MEASUREMENT__: string;
declare const __PARLEY_BOT_LABEL__: string;

/** One database per widget installation (both demo pages share it, one tab at a time). */
export const DB_NAME = 'parley-support-widget';
const LAST_BOT_KEY = 'app/widget/bot';
const STARTER_CHIPS = ['Hi!', 'Where is order 1042?', 'Opening hours', 'I want to return an item'];

type Phase = 'starting' | 'waiting-for-tab' | 'ready' | 'error';

/** Test and screenshot hooks: state only, never keys or message content. */
interface WidgetState {
  phase: Phase;
  backend: BackendName;
  deviceId?: string;
  botDeviceId?: string;
  verified?: boolean;
  errorCode?: string;
  errorRecord?: string;
  sent: number;
  received: number;
  delivered: number;
}

export async function start(backend: BackendName): Promise<void> {
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
  const pendingByMsgId = new Map<string, ChatItem>();

  const view = new WidgetView({
    consent: (item, granted) => void answerCard(item, granted ? 'You agreed.' : 'You declined.', { type: 'consent', granted }),
    submitForm: (item, formId, values) => void answerCard(item, 'Sent securely.', { type: 'form', formId, values }),
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
    const text = `${what}: ${state.errorCode}${record !== undefined ? ` (record "${record}")` : ''}. ${err ? err.message : 'unexpected error'}`;
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

  async function send(content: string | object, item: Omit<ChatItem, 'key'>): Promise<void> {
    if (!client) return;
    const id = ConversationEngine.newMessageId();
    const shown = await addItem({ ...item, msgId: id });
    pendingByMsgId.set(id, shown);
    try {
      await client.send(botId, content, { id });
      state.sent++;
    } catch (e) {
      const code = isParleyError(e) ? e.code : 'INTERNAL';
      await addItem({ who: 'system', at: Date.now(), text: `Not sent (${code}).` });
    }
  }

  async function sendText(text: string): Promise<void> {
    const t = text.trim();
    if (!t || state.phase !== 'ready') return;
    await send(t, { who: 'me', at: Date.now(), text: t });
  }

  async function answerCard(item: ChatItem, answered: string, reply: object): Promise<void> {
    if (state.phase !== 'ready' || item.answered) return;
    item.answered = answered;
    view.render(item);
    await history!.put(item);
    const summary = 'values' in reply ? 'Return details (sent end-to-end encrypted)' : answered;
    await send(reply, { who: 'me', at: Date.now(), text: summary });
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
  } catch (e) {
    fail(e, 'Crypto backend failed to start');
    return;
  }

  // 2. Configuration (untrusted: checked against the pins below).
  let cfg: DemoConfig;
  try {
    const res = await fetch('./api/config');
    if (!res.ok) throw new Error(`config: HTTP ${res.status}`);
    cfg = (await res.json()) as DemoConfig;
  } catch (e) {
    fail(e, 'Could not load the widget configuration');
    return;
  }
  botId = cfg.botDeviceId;
  state.botDeviceId = botId;
  panel.name(botId, 'bot');
  view.setDetail('bot-device', botId);
  view.setDetail('pinned-measurement', __PARLEY_MEASUREMENT__);

  // 3. Sealed storage.
  let store: IndexedDbStore;
  try {
    store = await IndexedDbStore.open({ dbName: DB_NAME });
  } catch (e) {
    fail(e, 'Stored chat data could not be opened');
    return;
  }
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

  // 5. The client (identity created on first use) and the history.
  try {
    client = await ParleyClient.create({
      relayUrl: location.origin,
      store,
      transport: { socketOptions: { transports: ['websocket'] } },
    });
    history = await ChatHistory.load(store);
  } catch (e) {
    fail(e, 'Stored chat data failed its integrity check');
    return;
  }
  state.deviceId = client.deviceId;
  panel.name(client.deviceId, 'you');
  view.setDetail('my-device', client.deviceId);

  for (const item of history.items) {
    view.render(item);
    if (item.msgId && !item.delivered) pendingByMsgId.set(item.msgId, item);
  }
  for (const f of history.failures) {
    const record = typeof f.details?.key === 'string' ? f.details.key : '?';
    view.render({ key: `failure-${record}`, who: 'system', at: Date.now(), text: `A stored message failed its integrity check and is not shown (${f.code}, record "${record}").` });
    state.errorCode = f.code;
    state.errorRecord = record;
  }
  const lastBot = await store.get(LAST_BOT_KEY).catch(() => undefined);
  const lastBotId = lastBot ? new TextDecoder().decode(lastBot) : undefined;
  if (lastBotId && lastBotId !== botId) {
    await addItem({ who: 'system', at: Date.now(), text: 'The support bot has a new device. Its identity is checked again below.' });
  }
  await store.setMany([[LAST_BOT_KEY, new TextEncoder().encode(botId)]]);
  if (history.items.length === 0) view.render({ key: 'chips', who: 'bot', at: Date.now(), card: { type: 'quick-replies', options: STARTER_CHIPS } });

  // 6. The bot's identity, certificate and measurement against the pins.
  const verdict = checkBot(cfg, { orgKey: __PARLEY_ORG_KEY__, measurement: __PARLEY_MEASUREMENT__, label: __PARLEY_BOT_LABEL__ });
  state.verified = verdict.verified;
  view.setDetail('measurement', verdict.measurement);
  view.setBadge(verdict.verified ? 'verified' : 'unverified', verdict.verified ? 'verified' : 'unverified', verdict.reason);
  const showSafetyNumber = (): void => {
    try {
      view.setDetail('safety-number', client!.safetyNumber(botId));
    } catch {
      view.setDetail('safety-number', 'shown after the first message');
    }
  };
  showSafetyNumber();

  // 7. Events: messages (consumed only after they are in the history), receipts, errors.
  client.on('delivered', ({ id }) => {
    const item = pendingByMsgId.get(id);
    if (!item) return;
    pendingByMsgId.delete(id);
    item.delivered = true;
    state.delivered++;
    view.render(item);
    void history!.put(item);
  });
  client.on('error', ({ error }: { error: ParleyError }) => {
    const record = typeof error.details?.key === 'string' ? ` (record "${error.details.key}")` : '';
    state.errorCode = error.code;
    if (record) state.errorRecord = String(error.details?.key);
    view.render({ key: `err-${Date.now()}-${Math.random()}`, who: 'system', at: Date.now(), text: `${error.code}${record}: ${error.message}` });
  });
  client.on('connected', () => view.setStatus('end-to-end encrypted · online'));
  client.on('disconnected', () => view.setStatus('reconnecting…'));
  void (async () => {
    for await (const m of client.messages()) await onMessage(m);
  })();

  async function onMessage(m: IncomingMessage): Promise<void> {
    if (m.from !== botId) return;
    state.received++;
    const card = m.type === 'json' ? parseCard(m.data) : undefined;
    await addItem({ who: 'bot', at: m.sentAt, ...(m.text !== undefined ? { text: m.text } : {}), ...(card ? { card } : {}) });
    showSafetyNumber();
  }

  try {
    await client.connect();
  } catch (e) {
    // The client keeps trying in the background; say so and let the user type (sends queue).
    view.setStatus(`offline (${isParleyError(e) ? e.code : 'TRANSPORT'}), retrying…`);
  }
  setPhase('ready');
  view.enableInput(true);
  window.addEventListener('pagehide', () => {
    void client?.close();
  });
}
