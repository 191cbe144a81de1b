import { stat } from 'node:fs/promises';

/**
 * Which file is at a path (device, inode, size, modification time): tells a snapshot file that
 * another writer put there (`rcptgate sync` beside the service) from the one this process last
 * wrote or read.
 */
export class FileStamp {
  private last: string | null = null;

  constructor(private readonly path: string) {}

  private async read(): Promise<string | null> {
    const s = await stat(this.path).catch(() => null);
    return s === null ? null : `${s.dev}:${s.ino}:${s.size}:${Math.trunc(s.mtimeMs)}`;
  }

  /** Records the file as it is now as ours. */
  async mark(): Promise<void> {
    this.last = await this.read();
  }

  /** Whether another file is there since mark(). */
  async replaced(): Promise<boolean> {
    const now = await this.read();
    return now !== null && now !== this.last;
  }
}
