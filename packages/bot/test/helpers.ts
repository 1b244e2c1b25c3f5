/** Shared test helpers: temp dirs, a capturing logger, a supervisor on a temp state dir, scanners. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initCrypto } from '@parley/protocol';
import { SealedBlobStore } from '../src/host/blob-store.js';
import { EnclaveSupervisor, type BotLogger, type SupervisorOptions } from '../src/host/supervisor.js';
import { handlerUrl } from '../src/measurement.js';

export const ECHO_HANDLER = new URL('./fixtures/echo-handler.ts', import.meta.url);

export async function setupCrypto(): Promise<void> {
  await initCrypto('node');
}

const dirs: string[] = [];
process.on('exit', () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/**
 * A temp dir removed when the test process exits (not in `t.after`: node:test runs after-hooks
 * in registration order, so the dir would vanish before the bot using it is closed).
 */
export function tempDir(_t?: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-bot-'));
  dirs.push(dir);
  return dir;
}

/** A logger that keeps every line as JSON text (what would reach the host's log sink). */
export function captureLogger(): BotLogger & { lines: string[]; text(): string } {
  const lines: string[] = [];
  const push = (level: string) => (obj: object, msg?: string) => {
    lines.push(JSON.stringify({ level, ...obj, msg }));
  };
  return { lines, info: push('info'), warn: push('warn'), error: push('error'), text: () => lines.join('\n') };
}

export async function openSupervisor(
  dir: string,
  extra: Partial<SupervisorOptions> = {},
): Promise<{ sup: EnclaveSupervisor; logger: ReturnType<typeof captureLogger>; sent: { to: string; id: string; envelope: Uint8Array }[] }> {
  const logger = captureLogger();
  const sent: { to: string; id: string; envelope: Uint8Array }[] = [];
  const blobStore = await SealedBlobStore.open(join(dir, 'sealed'));
  const sup = new EnclaveSupervisor({
    handlerUrl: handlerUrl(ECHO_HANDLER),
    blobStore,
    sealing: { file: join(dir, 'sealing.key'), create: true },
    oneTimePrekeys: 5,
    logger,
    onSend: (o) => sent.push(o),
    onReady: () => undefined,
    ...extra,
  });
  // Stopping also releases the state directory (as Bot.close does).
  const stop = sup.stop.bind(sup);
  sup.stop = async () => {
    await stop();
    await blobStore.close();
  };
  return { sup, logger, sent };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` every 10 ms until it holds or `ms` passes. */
export async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The encodings under which a secret could show up in text (heap snapshot strings, logs). */
export function encodings(secret: Uint8Array): string[] {
  const b = Buffer.from(secret);
  return [b.toString('hex'), b.toString('base64').replace(/=+$/, ''), b.toString('base64url')];
}

/** Counts occurrences of `needle` bytes in `hay`. */
export function countBytes(hay: Uint8Array, needle: Uint8Array): number {
  const h = Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength);
  let n = 0;
  for (let i = h.indexOf(needle); i !== -1; i = h.indexOf(needle, i + 1)) n++;
  return n;
}

/** Every Uint8Array/ArrayBuffer inside a (structured-clone) value. */
export function binariesIn(value: unknown, out: Uint8Array[] = [], depth = 0): Uint8Array[] {
  if (depth > 10 || value === null || typeof value !== 'object') return out;
  if (value instanceof Uint8Array) out.push(value);
  else if (value instanceof ArrayBuffer) out.push(new Uint8Array(value));
  else for (const v of Object.values(value)) binariesIn(v, out, depth + 1);
  return out;
}

/**
 * Finds any of many secrets (≥ 16 bytes each) in bytes and in text, fast enough for thousands
 * of secrets over megabytes: raw bytes are matched through a 4-byte-prefix index; text is
 * searched for the lower-case hex, base64 and base64url encodings via runs of their alphabets.
 */
export class SecretScanner {
  readonly #byPrefix = new Map<number, Uint8Array[]>();
  readonly #hex = new Set<string>();
  readonly #b64 = new Set<string>();

  constructor(secrets: readonly Uint8Array[]) {
    for (const s of secrets) {
      if (s.length < 16) throw new Error('secrets must be at least 16 bytes');
      const p = new DataView(s.buffer, s.byteOffset, 4).getUint32(0);
      const list = this.#byPrefix.get(p) ?? [];
      list.push(s);
      this.#byPrefix.set(p, list);
      const b = Buffer.from(s);
      this.#hex.add(b.toString('hex'));
      this.#b64.add(b.toString('base64').slice(0, 43));
      this.#b64.add(b.toString('base64url').slice(0, 43));
    }
  }

  countInBytes(hay: Uint8Array): number {
    let n = 0;
    const view = new DataView(hay.buffer, hay.byteOffset, hay.byteLength);
    for (let i = 0; i + 16 <= hay.length; i++) {
      const list = this.#byPrefix.get(view.getUint32(i));
      if (!list) continue;
      for (const s of list) {
        if (i + s.length > hay.length) continue;
        let eq = true;
        for (let k = 4; k < s.length && eq; k++) eq = hay[i + k] === s[k];
        if (eq) n++;
      }
    }
    return n;
  }

  countInText(text: string): number {
    let n = 0;
    for (const m of text.matchAll(/[0-9a-fA-F]{64,}/g)) {
      const run = m[0].toLowerCase();
      for (let i = 0; i + 64 <= run.length; i++) if (this.#hex.has(run.slice(i, i + 64))) n++;
    }
    for (const m of text.matchAll(/[A-Za-z0-9+/_-]{43,}/g)) {
      const run = m[0];
      for (let i = 0; i + 43 <= run.length; i++) if (this.#b64.has(run.slice(i, i + 43))) n++;
    }
    return n;
  }
}
