/**
 * Obtaining the sealing secret inside the enclave (docs/threats.md B5). Runs only inside the enclave.
 *
 * - `file`: the enclave opens the file itself; the host only ever holds the path. With
 *   `create`, a missing file is created here with fresh random bytes, mode 0600, exclusively
 *   (`wx`), so two enclaves can't race to two different secrets. A file readable by group or
 *   others is refused.
 * - `buffer`: the secret arrived as a transferred `ArrayBuffer` (the host's copy was detached
 *   by the transfer). It is copied out and the buffer zero-filled.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync, fsyncSync } from 'node:fs';
import { getCrypto, ParleyError } from '@parley/protocol';
import type { SealingSource } from '../rpc/messages.js';

const SECRET_BYTES = 32;

export function loadSealingSecret(source: SealingSource): Uint8Array {
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
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && source.create) return createSecretFile(source.path);
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

function createSecretFile(path: string): Uint8Array {
  const secret = getCrypto().randomBytes(SECRET_BYTES);
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (e) {
    // Someone else created it between our open and now: use theirs.
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadSealingSecret({ type: 'file', path, create: false });
    throw new ParleyError('ENCLAVE_UNAVAILABLE', 'cannot create the sealing secret file', { details: { errno: String((e as NodeJS.ErrnoException).code) } });
  }
  try {
    writeSync(fd, secret, 0, SECRET_BYTES, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return secret;
}
