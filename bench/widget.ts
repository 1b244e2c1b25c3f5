/**
 * The widget's first reply (issue 15): in Debian's Chromium (playwright-core, never a downloaded
 * browser), the time from navigation to "ready to send" and to the bot's first reply, cold and
 * warm, for the WASM page (`index.html`, libsodium) and the pure-JS page (`csp-noble.html`),
 * beside a baseline page per backend that only opens a bare socket.io connection to the same
 * relay and does one X3DH (`bench/widget/baseline*.{html,ts}`), and beside the gzip size of what
 * each page loads.
 *
 *   node --import tsx bench/widget.ts [--runs N] [--rounds R] [--max-seconds S] [--no-asset-cache] [--relay-panel] [--json out.json]
 *
 * - **cold**: a fresh browser context (empty HTTP cache, no IndexedDB: a new device), navigate;
 *   **warm**: the same context, reload (cached assets, the device's keys, session and history).
 * - "ready" is the widget's `parley:ready` mark (input enabled, relay logged in); the first reply
 *   is the bot's answer to "Where is order 1042?", which an init script sends the moment the
 *   page is ready and time-stamps when the answer is in the DOM. All times are the page's own
 *   `performance.now()` (0 = navigation start).
 * - `--runs N` (default 5) loads of each case per round, `--rounds R` (default 3) complete
 *   rounds, pages in rotating order; each case's figure is min / median / max of the round
 *   medians, and the ratio ready ÷ baseline (same backend, same temperature) is taken per round:
 *   PASS only when the worst round is ≤ 2×. `--max-seconds` (default 900) bounds the whole run
 *   (a round cut short reports what it has).
 * - The demo server sends every file `cache-control: no-store`; a site would serve Vite's
 *   content-hashed `/assets/*` as immutable, so the bench does that (for the widget and the
 *   baseline alike) unless `--no-asset-cache`.
 * - The demo page's "what the relay sees" panel is not part of a widget: its event stream replays
 *   every relay event so far (thousands, over a run) into a table during start-up, so the bench
 *   stubs `EventSource` in the page unless `--relay-panel`.
 *
 * Progress on stderr, the markdown report on stdout. Everything on 127.0.0.1 (`localhost`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { intFlag, scriptArgs } from './lib/args.js';
import { gzipSync } from 'node:zlib';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { toHex, type BackendName } from '@parley/protocol';
import { ConversationEngine, MemoryStore } from '@parley/engine';
import { RelayLink } from '@parley/relay-link';
import { startDemo, type Demo } from '../examples/web/serve.js';
import { buildPages } from '../examples/web/lib/build.js';
import { hasChromium, launchChromium, newWidgetContext, CHROMIUM_PATH } from '../examples/web/lib/driver.js';

// playwright-core is the demo's dependency (examples/web), not the bench's: its types through the driver.
type Browser = Awaited<ReturnType<typeof launchChromium>>;
type BrowserContext = Awaited<ReturnType<typeof newWidgetContext>>;
type Page = Awaited<ReturnType<BrowserContext['newPage']>>;
type Response = Awaited<ReturnType<Page['waitForResponse']>>;

const log = (line: string): void => void process.stderr.write(`[bench:widget] ${line}\n`);
const here = fileURLToPath(new URL('./widget/', import.meta.url));

type Temp = 'cold' | 'warm';
interface PageCase {
  readonly key: string;
  readonly label: string;
  readonly path: string;
  readonly backend: BackendName;
  readonly baseline: boolean;
}
const PAGES: readonly PageCase[] = [
  { key: 'wasm', label: 'widget, WASM (libsodium)', path: '/', backend: 'sodium', baseline: false },
  { key: 'noble', label: 'widget, pure JS (csp-noble.html)', path: '/csp-noble.html', backend: 'noble', baseline: false },
  { key: 'base-wasm', label: 'baseline, WASM', path: '/baseline-sodium.html', backend: 'sodium', baseline: true },
  { key: 'base-noble', label: 'baseline, pure JS', path: '/baseline-noble.html', backend: 'noble', baseline: true },
];
const QUESTION = 'Where is order 1042?';
const ANSWER = 'Order 1042';

/** One page load: the page's marks (ms since navigation) and its relay calls. */
interface Sample {
  readonly marks: Record<string, number>;
  /** First call of each relay event: sent at, answered at (page time). */
  readonly calls: Record<string, { out: number; ack: number }>;
  /** Every relay call in order (name, sent, answered; page time). */
  readonly all: { name: string; out: number; ack: number }[];
  /** Long tasks (main thread busy ≥ 50 ms at a stretch): start, duration. */
  readonly long: [number, number][];
  /** WebSocket created, opened, relay `hello` received (page time). */
  readonly ws: { create?: number; open?: number; hello?: number };
}

function usage(): never {
  process.stderr.write('usage: node --import tsx bench/widget.ts [--runs 1-20] [--rounds 1-10] [--max-seconds 60-3600] [--no-asset-cache] [--relay-panel] [--json file]\n');
  process.exit(2);
}

function parse(): { runs: number; rounds: number; maxSeconds: number; assetCache: boolean; relayPanel: boolean; json?: string } {
  let v;
  try {
    v = parseArgs({ args: scriptArgs(), strict: true, options: { runs: { type: 'string' }, rounds: { type: 'string' }, 'max-seconds': { type: 'string' }, 'no-asset-cache': { type: 'boolean', default: false }, 'relay-panel': { type: 'boolean', default: false }, json: { type: 'string' } } }).values;
  } catch {
    usage();
  }
  const int = (s: string | undefined, dflt: number, lo: number, hi: number): number => intFlag(s, dflt, lo, hi, usage);
  return {
    runs: int(v.runs, 5, 1, 20),
    rounds: int(v.rounds, 3, 1, 10),
    maxSeconds: int(v['max-seconds'], 900, 60, 3600),
    assetCache: !v['no-asset-cache'],
    relayPanel: v['relay-panel'],
    ...(v.json ? { json: v.json } : {}),
  };
}

/**
 * Runs in every page before its scripts: records the WebSocket's life and the text frames of
 * socket.io (event names and ack ids only, never payloads), and on widget pages sends the
 * question the moment `data-phase` is `ready` and marks `bench:send` / `bench:reply`.
 */
function initScript(autoSend: boolean, relayPanel: boolean): string {
  return `(() => {
  if (!${relayPanel}) window.EventSource = class { constructor() {} close() {} addEventListener() {} removeEventListener() {} };
  const wsLog = []; window.__benchWs = wsLog;
  const longTasks = []; window.__benchLong = longTasks;
  try { new PerformanceObserver((l) => { for (const e of l.getEntries()) if (longTasks.length < 400) longTasks.push([e.startTime, e.duration]); }).observe({ type: 'longtask', buffered: true }); } catch {}
  const Native = window.WebSocket;
  const note = (k, d) => { if (wsLog.length < 400) wsLog.push({ t: performance.now(), k, d }); };
  class Tapped extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      note('create');
      this.addEventListener('open', () => note('open'));
      this.addEventListener('message', (e) => { if (typeof e.data === 'string') note('in', e.data.slice(0, 64)); });
    }
    send(d) { if (typeof d === 'string') note('out', d.slice(0, 64)); return super.send(d); }
  }
  window.WebSocket = Tapped;
  if (!${autoSend}) return;
  const send = () => {
    const list = document.getElementById('messages');
    const before = list.querySelectorAll('li.msg.bot').length;
    const obs = new MutationObserver(() => {
      const bots = Array.from(list.querySelectorAll('li.msg.bot')).slice(before);
      if (bots.some((li) => (li.textContent || '').includes(${JSON.stringify(ANSWER)}))) { performance.mark('bench:reply'); obs.disconnect(); }
    });
    obs.observe(list, { childList: true, subtree: true, characterData: true });
    document.getElementById('input').value = ${JSON.stringify(QUESTION)};
    performance.mark('bench:send');
    document.getElementById('composer').requestSubmit();
  };
  document.addEventListener('DOMContentLoaded', () => {
    let sent = false;
    const check = () => { if (!sent && document.body.dataset.phase === 'ready') { sent = true; send(); } };
    new MutationObserver(check).observe(document.body, { attributes: true, attributeFilter: ['data-phase'] });
    check();
  });
})();`;
}

/** Reads the page's marks and relay frames once `until` is marked (or the page failed). */
async function collect(page: Page, until: string, timeout = 30_000): Promise<Sample> {
  await page.waitForFunction(
    (m: string) => performance.getEntriesByName(m).length > 0 || document.body?.dataset.phase === 'error',
    until,
    { timeout, polling: 20 },
  );
  const raw = await page.evaluate(() => ({
    phase: document.body.dataset.phase ?? '',
    error: document.body.dataset.error ?? '',
    marks: performance.getEntriesByType('mark').map((m) => [m.name, m.startTime] as [string, number]),
    ws: (window as unknown as { __benchWs: { t: number; k: string; d?: string }[] }).__benchWs,
    long: (window as unknown as { __benchLong: [number, number][] }).__benchLong,
  }));
  if (raw.phase === 'error') throw new Error(`page error${raw.error ? `: ${raw.error}` : ''}`);
  const marks: Record<string, number> = {};
  for (const [name, t] of raw.marks) marks[name] ??= t;
  // socket.io over engine.io: '4' + type (2 event, 3 ack, 5/6 binary) + ['N-'] + [id] + JSON.
  const calls: Record<string, { out: number; ack: number }> = {};
  const pending = new Map<string, { name: string; out: number }>();
  const ws: Sample['ws'] = {};
  const all: Sample['all'] = [];
  for (const e of raw.ws) {
    if (e.k === 'create') ws.create ??= e.t;
    else if (e.k === 'open') ws.open ??= e.t;
    const m = e.d ? /^4([0-6])(?:\d+-)?(\d*)(.*)$/s.exec(e.d) : null;
    if (!m) continue;
    const [, type, id, rest] = m as unknown as [string, string, string, string];
    const name = /^\["([^"]+)"/.exec(rest)?.[1];
    if (e.k === 'out' && (type === '2' || type === '5') && name && id) pending.set(id, { name, out: e.t });
    if (e.k === 'in' && (type === '2' || type === '5') && name === 'hello') ws.hello ??= e.t;
    if (e.k === 'in' && (type === '3' || type === '6') && id) {
      const p = pending.get(id);
      if (p && !calls[p.name]) calls[p.name] = { out: p.out, ack: e.t };
      if (p) all.push({ name: p.name, out: p.out, ack: e.t });
      pending.delete(id);
    }
  }
  return { marks, calls, all, ws, long: raw.long };
}

/** One context: a cold load and a warm reload of `pc`. */
async function coldAndWarm(browser: Browser, url: string, pc: PageCase, relayPanel: boolean): Promise<Record<Temp, Sample>> {
  const context: BrowserContext = await newWidgetContext(browser);
  try {
    await context.addInitScript(initScript(!pc.baseline, relayPanel));
    const page = await context.newPage();
    const until = pc.baseline ? 'parley:ready' : 'bench:reply';
    await page.goto(url + pc.path, { waitUntil: 'commit' });
    const cold = await collect(page, until);
    await page.reload({ waitUntil: 'commit' });
    const warm = await collect(page, until);
    return { cold, warm };
  } finally {
    await context.close();
  }
}

/** The bytes each page loads: raw and gzipped (level 6, each response alone), by kind. */
async function pageWeight(browser: Browser, url: string, pc: PageCase): Promise<{ raw: number; gzip: number; files: number; parts: Record<string, { raw: number; gzip: number }> }> {
  const context = await newWidgetContext(browser);
  try {
    const page = await context.newPage();
    const responses: Response[] = [];
    page.on('response', (r) => {
      const type = r.headers()['content-type'] ?? '';
      if (!type.includes('event-stream')) responses.push(r);
    });
    await page.goto(url + pc.path);
    await page.waitForFunction(() => ['ready', 'error'].includes(document.body?.dataset.phase ?? ''), undefined, { timeout: 30_000 });
    let raw = 0;
    let gzip = 0;
    const parts: Record<string, { raw: number; gzip: number }> = {};
    for (const r of responses) {
      const body = await r.body().catch(() => undefined);
      if (!body) continue;
      const path = new URL(r.url()).pathname;
      const kind = path.endsWith('.js') ? 'js' : path.endsWith('.css') ? 'css' : path.endsWith('.wasm') ? 'wasm' : path.endsWith('.html') || path === '/' ? 'html' : 'other';
      const g = gzipSync(body, { level: 6 }).length;
      raw += body.length;
      gzip += g;
      const p = (parts[kind] ??= { raw: 0, gzip: 0 });
      p.raw += body.length;
      p.gzip += g;
    }
    return { raw, gzip, files: responses.length, parts };
  } finally {
    await context.close();
  }
}

/** The support bot's published bundle, fetched from the relay as a new device would (untimed). */
async function botBundleJson(demo: Demo): Promise<string> {
  const engine = await ConversationEngine.open({ store: new MemoryStore() });
  const link = new RelayLink({ url: demo.url, credentials: { answer: (c) => engine.relayLoginAnswer(c) } });
  try {
    await link.connect({ timeoutMs: 10_000 });
    const b = await link.fetchBundle(demo.bot.deviceId);
    const bytes = (v: unknown): unknown =>
      v instanceof Uint8Array ? { $hex: toHex(v) } : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, bytes(x)])) : v;
    return JSON.stringify(bytes({ identity: b.identity, signedPrekey: b.signedPrekey, ...(b.oneTimePrekey ? { oneTimePrekey: b.oneTimePrekey } : {}) }));
  } finally {
    await link.close();
    await engine.close();
  }
}

/** Content-hashed Vite assets served as a site would: cacheable for a year, immutable. */
function cacheAssets(demo: Demo): void {
  demo.web.server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!(req.url ?? '').startsWith('/assets/')) return;
    const writeHead = res.writeHead.bind(res) as (code: number, headers?: Record<string, unknown>) => ServerResponse;
    (res as unknown as { writeHead: typeof writeHead }).writeHead = (code, headers) =>
      writeHead(code, headers && code === 200 ? { ...headers, 'cache-control': 'public, max-age=31536000, immutable' } : headers);
  });
}

// ---- statistics and report ----

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
const ms = (x: number): string => (Number.isFinite(x) ? (x >= 100 ? x.toFixed(0) : x.toFixed(1)) : '–');
const spread = (xs: readonly number[]): string => (xs.length ? `${ms(Math.min(...xs))} / ${ms(median(xs))} / ${ms(Math.max(...xs))}` : '–');
const kb = (n: number): string => `${(n / 1024).toFixed(1)} kB`;

/** Sum of the round trips of relay calls sent within [from, to). */
function rtts(s: Sample, from: number | undefined, to: number | undefined): number {
  if (from === undefined || to === undefined) return NaN;
  return s.all.filter((c) => c.out >= from && c.out < to).reduce((a, c) => a + Math.min(c.ack, to) - c.out, 0);
}

/** Main-thread time in long tasks (≥ 50 ms each) overlapping [from, to). */
function busy(s: Sample, from: number | undefined, to: number | undefined): number {
  if (from === undefined || to === undefined) return NaN;
  return s.long.reduce((a, [t, d]) => a + Math.max(0, Math.min(t + d, to) - Math.max(t, from)), 0);
}

/** Named intervals of a sample (ms), the start-up steps in order; missing marks give NaN. */
function segments(s: Sample, baseline: boolean): [string, number][] {
  const m = s.marks;
  const d = (a: number | undefined, b: number | undefined): number => (a === undefined || b === undefined ? NaN : b - a);
  const call = (n: string): number => (s.calls[n] ? s.calls[n].ack - s.calls[n].out : NaN);
  if (baseline) {
    return [
      ['page load → script runs (HTML, JS fetch, parse, evaluate)', m['parley:start'] ?? NaN],
      ['crypto init (WASM compile / JS)', d(m['parley:start'], m['parley:crypto'])],
      ['bundle fetch (HTTP)', d(m['parley:crypto'], m['parley:bundle'])],
      ['identity + X3DH', d(m['parley:bundle'], m['parley:x3dh'])],
      ['socket.io connect → relay hello', d(m['parley:x3dh'], m['parley:connected'])],
    ];
  }
  return [
    ['page load → script runs (HTML, JS fetch, parse, evaluate)', m['parley:start'] ?? NaN],
    ['  of which: main thread in long tasks (≥ 50 ms)', busy(s, 0, m['parley:start'])],
    ['crypto init (WASM compile / JS)', d(m['parley:start'], m['parley:crypto'])],
    ['config fetch (/api/config)', d(m['parley:crypto'], m['parley:config'])],
    ['IndexedDB open (sealed store, wrapping key)', d(m['parley:config'], m['parley:store'])],
    ['writer lock', d(m['parley:store'], m['parley:lock'])],
    ['client create (key generation or load)', d(m['parley:lock'], m['parley:client'])],
    ['history load', d(m['parley:client'], m['parley:history'])],
    ['history render', d(m['parley:history'], m['parley:history-shown'])],
    ['last bot noted (store read + write)', d(m['parley:history-shown'], m['parley:bot-noted'])],
    ['conversation restore (store read, SDK lookup)', d(m['parley:bot-noted'], m['parley:resumed'])],
    ['handoff and privacy panels', d(m['parley:resumed'], m['parley:panels'])],
    ['trust badge + safety number', d(m['parley:panels'], m['parley:trust-shown'])],
    ['event wiring', d(m['parley:trust-shown'], m['parley:connect'])],
    ['relay connect + login (client.connect)', d(m['parley:connect'], m['parley:connected'])],
    ['  of which: socket open → relay hello', d(s.ws.create, s.ws.hello)],
    ['  of which: auth round trip', call('auth')],
    ['  of which: prekey uploads (round trips, sequential)', s.all.filter((c) => c.name === 'uploadPrekeys' && c.out < (m['parley:connected'] ?? Infinity)).reduce((a, c) => a + c.ack - c.out, 0)],
    ['  of which: main thread in long tasks (≥ 50 ms)', busy(s, m['parley:connect'], m['parley:connected'])],
    ['  uploadPrekeys calls before ready', s.all.filter((c) => c.name === 'uploadPrekeys' && c.out < (m['parley:ready'] ?? Infinity)).length],
    ['connected → ready', d(m['parley:connected'], m['parley:ready'])],
    ['**ready** → question sent (bench)', d(m['parley:ready'], m['bench:send'])],
    ['client.startConversation (cold: identity + bundle fetch, statements, X3DH, invite)', d(m['bench:send'], m['parley:conversation-started'])],
    ['  of which: relay round trips (fetchIdentity, fetchBundle, send)', rtts(s, m['bench:send'], m['parley:conversation-started'])],
    ['  of which: main thread in long tasks (≥ 50 ms)', busy(s, m['bench:send'], m['parley:conversation-started'])],
    ['widget: conversation id stored, members shown', d(m['parley:conversation-started'], m['parley:conversation'])],
    ['encrypt + send (relay ack)', d(m['parley:conversation'], m['parley:sent'])],
    ['  of which: relay round trip (send)', rtts(s, m['parley:conversation'], m['parley:sent'])],
    ['bot answers, reply decrypted and shown', d(m['parley:sent'], m['bench:reply'])],
  ];
}

interface RoundResult {
  readonly samples: Record<string, Record<Temp, Sample[]>>;
  readonly load: [number, number];
}

async function main(): Promise<void> {
  const o = parse();
  if (!hasChromium()) {
    log(`${CHROMIUM_PATH} is missing: install Debian's chromium package`);
    process.exit(1);
  }
  const deadline = Date.now() + o.maxSeconds * 1000;
  const dist = mkdtempSync(join(tmpdir(), 'parley-bench-widget-'));
  let demo: Demo | undefined;
  let browser: Browser | undefined;
  try {
    log('building the widget pages and starting relay + bot (startDemo)…');
    // Every page and the bot come from 127.0.0.1, and each cold load is a new customer whose
    // statements the bot looks up: the relay's per-minute fetch limits (10 per requester, 60 per
    // address) would throttle a bench that starts a few dozen customers a minute.
    demo = await startDemo({ distDir: dist, relay: { limits: { bundleFetchesPerMinute: 10_000, bundleFetchesPerMinutePerAddress: 10_000 } } });
    for (const backend of ['sodium', 'noble'] as const) {
      await buildPages({ root: here, input: { [`baseline-${backend}`]: join(here, `baseline-${backend}.html`) }, outDir: dist, backend, keepOutDir: true });
    }
    writeFileSync(join(dist, 'bench-bundle.json'), await botBundleJson(demo));
    if (o.assetCache) cacheAssets(demo);
    browser = await launchChromium();

    log('page weights…');
    const weights: Record<string, Awaited<ReturnType<typeof pageWeight>>> = {};
    for (const pc of PAGES) weights[pc.key] = await pageWeight(browser, demo.url, pc);

    const rounds: RoundResult[] = [];
    const failed: string[] = [];
    for (let r = 0; r < o.rounds && Date.now() < deadline; r++) {
      const before = loadavg()[0]!;
      const samples: RoundResult['samples'] = {};
      for (const pc of PAGES) samples[pc.key] = { cold: [], warm: [] };
      for (let i = 0; i < o.runs && Date.now() < deadline; i++) {
        for (let k = 0; k < PAGES.length; k++) {
          const pc = PAGES[(i + k + r) % PAGES.length]!;
          try {
            const s = await coldAndWarm(browser, demo.url, pc, o.relayPanel);
            samples[pc.key]!.cold.push(s.cold);
            samples[pc.key]!.warm.push(s.warm);
          } catch (e) {
            // A load that fails or times out (30 s) is left out and counted, never waited for.
            failed.push(`${pc.key} round ${r + 1}: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
            log(`load failed: ${failed.at(-1)}`);
          }
        }
        log(`round ${r + 1}/${o.rounds}, load ${i + 1}/${o.runs} of each page done (load average ${loadavg()[0]!.toFixed(2)})`);
      }
      rounds.push({ samples, load: [before, loadavg()[0]!] });
    }
    if (o.json) writeFileSync(o.json, JSON.stringify({ weights, rounds }, null, 1));
    process.stdout.write(report(o, weights, rounds, failed));
  } finally {
    await browser?.close().catch(() => undefined);
    await demo?.close().catch(() => undefined);
    rmSync(dist, { recursive: true, force: true });
  }
}

function report(o: ReturnType<typeof parse>, weights: Record<string, Awaited<ReturnType<typeof pageWeight>>>, rounds: RoundResult[], failed: readonly string[]): string {
  const out: string[] = [];
  const complete = rounds.filter((r) => Object.values(r.samples).every((s) => s.cold.length === o.runs));
  out.push(`### Widget first reply (${rounds.length} round(s), ${complete.length} complete, ${o.runs} loads of each case per round; Chromium ${CHROMIUM_PATH}; ${cpus().length} cores; load average per round ${rounds.map((r) => `${r.load[0].toFixed(1)}→${r.load[1].toFixed(1)}`).join(', ')}; assets ${o.assetCache ? 'cacheable (immutable)' : 'no-store'}; demo relay panel ${o.relayPanel ? 'on' : 'off'})`);
  out.push('');
  out.push('Each figure: min / median / max over the rounds of the round\'s median, ms from navigation start.');
  out.push('');
  out.push('| case | ready to send | first reply | baseline (socket.io + X3DH) | ready ÷ baseline per round | ≤ 2× |');
  out.push('|---|---|---|---|---|---|');
  const roundMedian = (r: RoundResult, key: string, t: Temp, pick: (s: Sample) => number): number => median(r.samples[key]![t].map(pick).filter(Number.isFinite));
  const ready = (s: Sample): number => s.marks['parley:ready'] ?? NaN;
  const reply = (s: Sample): number => s.marks['bench:reply'] ?? NaN;
  for (const pc of PAGES.filter((p) => !p.baseline)) {
    const base = pc.backend === 'sodium' ? 'base-wasm' : 'base-noble';
    for (const t of ['cold', 'warm'] as const) {
      const readies = rounds.map((r) => roundMedian(r, pc.key, t, ready));
      const replies = rounds.map((r) => roundMedian(r, pc.key, t, reply));
      const bases = rounds.map((r) => roundMedian(r, base, t, ready));
      const ratios = readies.map((x, i) => x / bases[i]!);
      const worst = Math.max(...ratios);
      out.push(`| ${pc.label}, ${t} | ${spread(readies)} | ${spread(replies)} | ${spread(bases)} | ${ratios.map((x) => `${x.toFixed(2)}×`).join(', ')} | ${worst <= 2 ? 'PASS' : 'FAIL'} (worst ${worst.toFixed(2)}×) |`);
    }
  }
  out.push('');
  out.push('**What each page loads** (every HTTP response body of one cold load, gzipped one by one at level 6; the demo server sends them uncompressed, so the wire carries the raw size; the relay panel\'s event stream is left out):');
  out.push('');
  out.push('| page | files | raw | gzip | of which JS (gzip) | WASM | CSS | HTML |');
  out.push('|---|---|---|---|---|---|---|---|');
  for (const pc of PAGES) {
    const w = weights[pc.key]!;
    const p = (k: string): string => (w.parts[k] ? kb(w.parts[k].gzip) : '–');
    out.push(`| ${pc.label} | ${w.files} | ${kb(w.raw)} | ${kb(w.gzip)} | ${p('js')} | ${p('wasm')} | ${p('css')} | ${p('html')} |`);
  }
  out.push('');
  out.push('**Where the time goes** (median over every load of all rounds, ms; from the widget\'s `parley:*` marks and the socket.io frames):');
  out.push('');
  for (const baseline of [false, true]) {
    const cases = PAGES.filter((p) => p.baseline === baseline);
    const cols = cases.flatMap((pc) => (['cold', 'warm'] as const).map((t) => ({ pc, t })));
    out.push(`| ${baseline ? 'baseline step' : 'widget step'} | ${cols.map((c) => `${c.pc.key} ${c.t}`).join(' | ')} |`);
    out.push(`|---|${cols.map(() => '---:').join('|')}|`);
    const all = cols.map((c) => rounds.flatMap((r) => r.samples[c.pc.key]![c.t]));
    const names = segments(all[0]![0] ?? { marks: {}, calls: {}, all: [], ws: {}, long: [] }, baseline).map(([n]) => n);
    names.forEach((name, i) => {
      out.push(`| ${name} | ${all.map((ss) => ms(median(ss.map((s) => segments(s, baseline)[i]![1]).filter(Number.isFinite)))).join(' | ')} |`);
    });
    out.push(`| **ready** | ${all.map((ss) => ms(median(ss.map(ready).filter(Number.isFinite)))).join(' | ')} |`);
    if (!baseline) out.push(`| **first reply** | ${all.map((ss) => ms(median(ss.map(reply).filter(Number.isFinite)))).join(' | ')} |`);
    out.push('');
  }
  out.push(failed.length ? `Failed loads (left out): ${failed.length}: ${failed.join('; ')}` : 'Failed loads: none.');
  return `${out.join('\n')}\n`;
}

main().catch((e: unknown) => {
  log(`failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
