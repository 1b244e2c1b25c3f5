/** Small file helpers of the Node `FileStore`: atomic replace, directory fsync, wipe-then-remove. */
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Flushes a directory entry change (rename, create, unlink). */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some platforms cannot fsync a directory; the rename is still atomic there.
  } finally {
    await fh?.close();
  }
}

/** Writes a file atomically: temp file, fsync, rename, fsync the directory. */
export async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/**
 * Overwrites a file's bytes with zeros (flushed), then removes it. Best effort against someone
 * who later reads the file system's free blocks; it cannot reach copies the file system or the
 * disk keep elsewhere (journal, copy-on-write, SSD remapping). Missing file: nothing to do.
 */
export async function wipeAndRemove(path: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  try {
    const { size } = await fh.stat();
    const zeros = Buffer.alloc(Math.min(size, 1 << 20));
    for (let at = 0; at < size; at += zeros.length) await fh.write(zeros, 0, Math.min(zeros.length, size - at), at);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rm(path, { force: true });
  await fsyncDir(dirname(path));
}
