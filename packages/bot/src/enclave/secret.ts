/**
 * The files the enclave opens itself: the sealing secret (docs/threats.md B5) and the rollback
 * anchor (B10). Runs only inside the enclave; the host only ever holds their paths.
 *
 * - `file`: the enclave opens the file itself; the host only ever holds the path. With
 *   `create`, a missing file is created here with fresh random bytes, mode 0600, exclusively
 *   (`wx`), so two enclaves can't race to two different secrets; but never when the host
 *   handed in sealed state (a new secret could not open it: the file was lost or moved). A file
 *   readable by group or others is refused.
 * - `buffer`: the secret arrived as a transferred `ArrayBuffer` (the host's copy was detached
 *   by the transfer). It is copied out and the buffer zero-filled.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { getCrypto, ParleyError, concatBytes, constantTimeEqual, utf8 } from '@parley/protocol';
import type { SealingSource } from '../rpc/messages.js';
import { STATE_ID_BYTES } from './seal.js';

const SECRET_BYTES = 32;

/**
 * Loads (or, for a `file` source with `create` and `mayCreate`, creates) the sealing secret.
 * @throws ParleyError `USAGE` with `details.reason: 'sealingSecretMissing'` when the file is
 *   missing but `mayCreate` is false (the state exists: only the lost secret opens it).
 */
export async function loadSealingSecret(source: SealingSource, mayCreate = true): Promise<Uint8Array> {
  if (source.type === 'buffer') {
    const view = new Uint8Array(source.secret);
    const secret = view.slice();
    view.fill(0);
    return secret;
  }
  let fd: number;
  try {
    fd = openSync(source.path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && source.create) {
      if (!mayCreate) {
        throw new ParleyError(
          'USAGE',
          `the sealing secret file does not exist, but the state folder holds sealed state that only that secret opens: put the file back (or point sealingSecret at it); a new secret would not open this state: ${source.path}`,
          { details: { reason: 'sealingSecretMissing', path: source.path } },
        );
      }
      return createSecretFile(source.path);
    }
    throw new ParleyError('ENCLAVE_UNAVAILABLE', 'cannot open the sealing secret file', { details: { errno: String((e as NodeJS.ErrnoException).code) } });
  }
  try {
    const st = fstatSync(fd);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new ParleyError('USAGE', 'sealing secret file must not be readable by group or others (chmod 600)');
    }
    if (st.size !== SECRET_BYTES) throw new ParleyError('USAGE', 'sealing secret file must hold exactly 32 bytes', { details: { size: st.size } });
    const secret = new Uint8Array(SECRET_BYTES);
    if (readSync(fd, secret, 0, SECRET_BYTES, 0) !== SECRET_BYTES) throw new ParleyError('USAGE', 'short read of the sealing secret');
    return secret;
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates the secret file exclusively and makes it durable. Through a `FileHandle`: in process
 * mode Node's permission model refuses the descriptor-only `fsyncSync` (README "Enclave modes").
 */
async function createSecretFile(path: string): Promise<Uint8Array> {
  const secret = getCrypto().randomBytes(SECRET_BYTES);
  let fh: FileHandle;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (e) {
    // Someone else created it between our open and now: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadSealingSecret({ type: 'file', path, create: false });
    throw new ParleyError('ENCLAVE_UNAVAILABLE', 'cannot create the sealing secret file', { details: { errno: String((e as NodeJS.ErrnoException).code) } });
  }
  try {
    await fh.write(secret, 0, SECRET_BYTES, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return secret;
}

/** What the rollback anchor holds: the newest state version the enclave let a handler run after. */
export interface AnchorValue {
  readonly stateId: Uint8Array;
  readonly version: number;
}

const ANCHOR_MAGIC = utf8('PRA1');
const ANCHOR_MAC_DOMAIN = utf8('parley/v2/enclave-anchor\u0000');
const SLOT_BYTES = 64;
const BODY_BYTES = 4 + 4 + STATE_ID_BYTES + 8;

/**
 * The rollback anchor (README "Rollback"; docs/threats.md B10): a small file outside the state
 * folder in which the enclave records, before it lets the handler run for a message, the state
 * version that queued it. A state older than the anchor was rolled back by the host, and the
 * enclave refuses it (see `SealedKeyValueStore`). This is the enclave's stand-in for a TEE's
 * monotonic counter; the host can roll the file back too (it controls the disk): what it
 * catches is a state folder restored or swapped on its own.
 *
 * ```
 *  file  = slot 0 || slot 1                                  (128 bytes)
 *  slot  = "PRA1" || u32 seq || state id (16) || u64 version || HMAC-SHA256(anchor key, "parley/v2/enclave-anchor" 0x00 || the 32 bytes before)
 * ```
 * Writes alternate slots (`seq` mod 2) and are fdatasync'ed; the valid slot with the higher
 * `seq` counts, so a torn write leaves the previous value. The file is created whole (temp
 * file, fsync, rename). Writes are coalesced: one write covers every request made meanwhile.
 */
export class RollbackAnchor {
  readonly path: string;
  readonly #key: Uint8Array;
  /** What the file held at open (`undefined`: no file). */
  readonly recorded: AnchorValue | undefined;
  #seq: number;
  #fh: FileHandle | undefined;
  #durable: AnchorValue | undefined;
  #wanted: AnchorValue | undefined;
  #writing: Promise<void> | undefined;

  private constructor(path: string, key: Uint8Array, recorded: AnchorValue | undefined, seq: number) {
    this.path = path;
    this.#key = key;
    this.recorded = recorded;
    this.#durable = recorded;
    this.#seq = seq;
  }

  /**
   * Reads the anchor at `path` (a missing file is no anchor yet).
   * @throws ParleyError `STORAGE_INTEGRITY` (`details.reason: 'anchorDamaged'`) when the file
   *   exists but holds no valid slot (damaged, or written under another sealing secret).
   */
  static async open(path: string, key: Uint8Array): Promise<RollbackAnchor> {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(path));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new RollbackAnchor(path, key, undefined, 0);
      throw new ParleyError('ENCLAVE_UNAVAILABLE', 'cannot read the rollback anchor', { details: { errno: String((e as NodeJS.ErrnoException).code) } });
    }
    let best: { seq: number; value: AnchorValue } | undefined;
    for (let slot = 0; slot < 2 && bytes.length === 2 * SLOT_BYTES; slot++) {
      const s = bytes.subarray(slot * SLOT_BYTES, (slot + 1) * SLOT_BYTES);
      if (!ANCHOR_MAGIC.every((b, i) => s[i] === b)) continue;
      if (!constantTimeEqual(mac(key, s.subarray(0, BODY_BYTES)), s.subarray(BODY_BYTES, BODY_BYTES + 32))) continue;
      const view = new DataView(s.buffer, s.byteOffset);
      const seq = view.getUint32(4);
      const version = Number(view.getBigUint64(8 + STATE_ID_BYTES));
      if (!best || seq > best.seq) best = { seq, value: { stateId: s.slice(8, 8 + STATE_ID_BYTES), version } };
    }
    if (!best) {
      throw new ParleyError(
        'STORAGE_INTEGRITY',
        `the rollback anchor is damaged or was written under another sealing secret. If this bot's state folder is the newest copy, delete the anchor file: a new one is written at the next start (rollback detection starts again from there): ${path}`,
        { details: { reason: 'anchorDamaged', anchor: path } },
      );
    }
    return new RollbackAnchor(path, key, best.value, best.seq);
  }

  /** Resolves once the anchor durably holds `value` (or a later version of the same state). */
  advance(value: AnchorValue): Promise<void> {
    const covered = (v: AnchorValue | undefined): boolean => v !== undefined && constantTimeEqual(v.stateId, value.stateId) && v.version >= value.version;
    if (covered(this.#durable)) return Promise.resolve();
    if (!covered(this.#wanted)) this.#wanted = value;
    const run = async (): Promise<void> => {
      while (this.#wanted && !(this.#durable && constantTimeEqual(this.#durable.stateId, this.#wanted.stateId) && this.#durable.version >= this.#wanted.version)) {
        const target = this.#wanted;
        await this.#write(target);
        this.#durable = target;
      }
    };
    const chained = (this.#writing ?? Promise.resolve()).then(run);
    this.#writing = chained.catch(() => undefined);
    return chained.then(() => {
      if (!covered(this.#durable)) throw new ParleyError('ENCLAVE_UNAVAILABLE', 'the rollback anchor was not written');
    });
  }

  async #write(value: AnchorValue): Promise<void> {
    const seq = ++this.#seq;
    const slot = slotBytes(this.#key, seq, value);
    if (!this.#fh) {
      // Created whole: a crash leaves no file or a complete one, never a file with no valid slot.
      const tmp = `${this.path}.tmp`;
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(concatBytes(slot, slot));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      const dir = await open(dirname(this.path), 'r');
      await dir.sync().catch(() => undefined);
      await dir.close();
      this.#fh = await open(this.path, 'r+');
      return;
    }
    await this.#fh.write(slot, 0, SLOT_BYTES, (seq % 2) * SLOT_BYTES);
    await this.#fh.datasync();
  }
}

function mac(key: Uint8Array, body: Uint8Array): Uint8Array {
  return getCrypto().hmacSha256(key, concatBytes(ANCHOR_MAC_DOMAIN, body));
}

function slotBytes(key: Uint8Array, seq: number, value: AnchorValue): Uint8Array {
  const s = new Uint8Array(SLOT_BYTES);
  const view = new DataView(s.buffer);
  s.set(ANCHOR_MAGIC, 0);
  view.setUint32(4, seq >>> 0);
  s.set(value.stateId, 8);
  view.setBigUint64(8 + STATE_ID_BYTES, BigInt(value.version));
  s.set(mac(key, s.subarray(0, BODY_BYTES)), BODY_BYTES);
  return s;
}
