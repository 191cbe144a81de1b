import { randomBytes } from 'node:crypto';
import { open, readdir, readlink, realpath, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { READ_FLAGS, notRegular } from '../config/regular-file.js';

/**
 * Writes `head` then `blocks` to a temp file beside `path` (a link followed), fsyncs it and
 * renames it over `path`: a reader sees the old file or the new one, never a torn one. Whatever
 * fails, the old file stays and no temp file is left behind. The rename is persisted by an fsync
 * of the directory (some filesystems cannot do that, which is harmless). A process killed
 * mid-write (SIGKILL, the OOM killer during a full sync) leaves its temp file: the next write
 * removes such leftovers, so a crash loop cannot fill the disk with partial snapshots.
 */
export async function writeFileAtomically(linkOrPath: string, head: string, blocks: Iterable<Uint8Array>): Promise<void> {
  const path = await followLinks(linkOrPath);
  const dir = dirname(path);
  // rename() would put our file in the place of a FIFO or a device node (/dev/null, as root).
  const there = await stat(path).catch(() => null);
  if (there !== null && !there.isFile()) throw notRegular(there);
  await removeLeftovers(dir, basename(path));
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      // Root replacing the file of a service that runs as its own user (`sudo rcptgate sync`) made
      // it root's, mode 0600: the service could not read it back at its next start.
      if (there !== null && there.uid !== process.getuid?.()) await fh.chown(there.uid, there.gid).catch(() => undefined);
      await fh.writeFile(head);
      for (const b of blocks) await writeAll(fh, b);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  const dh = await open(dir, 'r').catch(() => null);
  await dh?.sync().catch(() => undefined);
  await dh?.close();
}

/**
 * One write() may take only part of a block: a disk that fills up writes what fits and says so
 * only in the count; the next write fails with ENOSPC. Taking the count for the whole block
 * renamed a file cut short over the good one (refused at the next start).
 */
async function writeAll(fh: FileHandle, block: Uint8Array): Promise<void> {
  for (let done = 0; done < block.length; ) {
    const { bytesWritten } = await fh.write(block, done, block.length - done);
    if (bytesWritten === 0) throw new Error('the disk took no more bytes of the file');
    done += bytesWritten;
  }
}

/**
 * Where a write must land: a symbolic link (the file kept on another volume) is followed, so the
 * file it points to is replaced and the link stays; one that points nowhere yet, to its target.
 */
export async function followLinks(path: string): Promise<string> {
  const real = await realpath(path).catch(() => null);
  if (real !== null) return real;
  const target = await readlink(path).catch(() => null);
  return target === null ? path : resolve(dirname(path), target);
}

/** A write in progress touches its temp file all the time; one untouched this long lost its writer. */
const ABANDONED_MS = 60_000;

/**
 * Removes temp files of `base` untouched for a minute. Their writer's pid says nothing reliable
 * (in containers every start gets the same one, and a `rcptgate sync` job sharing the volume has
 * its own pid namespace); how recently the file was written does.
 */
async function removeLeftovers(dir: string, base: string): Promise<void> {
  const prefix = `.${base}.`;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const file = join(dir, name);
    const info = await stat(file).catch(() => null);
    if (info !== null && Date.now() - info.mtimeMs > ABANDONED_MS) await unlink(file).catch(() => undefined);
  }
}


/**
 * Opens a file we read back (snapshot, answer file) and checks that it is a regular file. A FIFO
 * would block open() until some writer appeared (the start would hang before any listener
 * opened, on a thread of libuv's pool) and a device such as /dev/zero never ends: both are refused.
 */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const fh = await open(path, READ_FLAGS);
  try {
    const info = await fh.stat();
    if (!info.isFile()) throw notRegular(info);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** The whole content of a regular file (see openRegularFile). */
export async function readRegularFile(path: string): Promise<Buffer> {
  const fh = await openRegularFile(path);
  try {
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}
