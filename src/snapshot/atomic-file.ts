import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `head` then `blocks` to a temp file beside `path`, fsyncs it and renames it over
 * `path`: a reader sees the old file or the new one, never a torn one. Whatever fails, the old
 * file stays and no temp file is left behind. The rename is persisted by an fsync of the
 * directory (some filesystems cannot do that, which is harmless).
 */
export async function writeFileAtomically(path: string, head: string, blocks: Iterable<Uint8Array>): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o600);
  try {
    try {
      await fh.writeFile(head);
      for (const b of blocks) await fh.write(b);
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
