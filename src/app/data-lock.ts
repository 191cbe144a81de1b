import { lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server } from 'node:net';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCodes, RcptgateError } from '../errors.js';
import { followLinks } from '../snapshot/atomic-file.js';
import type { Logger } from '../log.js';

/**
 * One service per data file. Two instances given the same `cache.persistPath` or
 * `sync.snapshotPath` (against different directories, or the same one) overwrote each other's
 * file. The lock is a Unix socket next to the file (`FILE.lock`) that the service listens on
 * while it runs: a second one finds it answering and refuses to start, naming the holder it
 * answers with. The kernel, not a pid, says whether the holder lives: a lock left by a process
 * that died (SIGKILL, power loss) refuses connections and is taken over, whatever runs under its
 * pid now (a restarted container's service is pid 1 again). It works between processes of one
 * machine, containers sharing a volume included; not across hosts on a network filesystem.
 * `rcptgate sync` takes no lock: it writes the snapshot the running service reads.
 */
export interface DataLock {
  /** Locks the files of `files` not held yet (a reload that names a new path); throws like lockDataFiles. */
  add(files: LockedFile[]): Promise<void>;
  release(): Promise<void>;
}

export interface LockedFile {
  /** The config key naming the file, for the error. */
  key: string;
  path: string;
}

interface Holder {
  pid: number;
  host: string;
  since: string;
}

/** What to raise when a start runs out of file descriptors (a listener, the data file lock). */
export const OPEN_FILE_LIMIT = "raise the open-file limit (ulimit -n, systemd LimitNOFILE=, the container runtime's nofile; fs.file-max for the whole system)";

/** How long a holder's answer may take: one that accepts and says nothing is still alive. */
const ASK_TIMEOUT_MS = 2_000;
/**
 * How long after binding the lock is checked to be still ours. Two instances taking over one
 * stale lock at the same moment each check that it is the dead one and then unlink the path: the
 * later unlink could remove the lock the other had just bound, and both ran. That unlink comes
 * within a file system call of its check, long before this.
 */
const VERIFY_MS = 200;

/** Locks every file of `files` or throws a ConfigError naming the first one held; locks taken are released then. */
export async function lockDataFiles(files: LockedFile[], logger: Logger): Promise<DataLock> {
  const held = new Map<string, (() => Promise<void>) | null>();
  const release = async () => {
    for (const [path, r] of [...held]) {
      held.delete(path);
      await r?.();
    }
  };
  const add = async (more: LockedFile[]) => {
    for (const file of more) {
      // Next to the file written, not the name given: a second instance naming it through a
      // symbolic link would otherwise take a lock of its own and write the same file.
      const target = await followLinks(file.path);
      if (!held.has(target)) held.set(target, await lockOne(file, target, logger));
    }
  };
  try {
    await add(files);
  } catch (err) {
    await release();
    throw err;
  }
  return { add, release };
}

async function lockOne(file: LockedFile, target: string, logger: Logger): Promise<(() => Promise<void>) | null> {
  const lockPath = `${target}.lock`;
  const me: Holder = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    const server = createServer((s) => s.on('error', () => undefined).end(JSON.stringify(me)));
    const err = await listen(server, lockPath);
    if (err === null) {
      const ino = (await lstat(lockPath)).ino;
      await sleep(VERIFY_MS);
      if ((await inode(lockPath)) !== ino) {
        // Removed by another instance taking over the same stale lock: ask whoever holds it now.
        // Not closed: closing a Unix socket server unlinks its path, now the other's lock.
        continue;
      }
      logger.debug({ key: file.key, lock: lockPath }, 'data file locked');
      return () => unlock(server, lockPath, ino);
    }
    // Out of descriptors says nothing about the volume: serving without the lock would let a
    // second instance write the same file.
    if (err.code === 'EMFILE' || err.code === 'ENFILE') {
      throw new RcptgateError(ErrorCodes.CONFIG_INVALID, `${file.key}: cannot open the lock ${lockPath}: too many open files: ${OPEN_FILE_LIMIT}`);
    }
    if (err.code !== 'EADDRINUSE') {
      // A read-only volume (the file is only read) or a path too long for a socket: no lock.
      logger.warn({ key: file.key, lock: lockPath, code: err.code }, `${file.key}: no lock next to the file (${err.message}); make sure no other instance writes it`);
      return null;
    }
    const found = await ask(lockPath);
    if (found.alive) throw held(file, lockPath, found.holder, found.unreachable);
    // Nothing listens: the lock of a process that died. Removed only if it is still that one.
    if (found.ino !== null && (await inode(lockPath)) === found.ino) {
      const gone = await unlink(lockPath).then(() => null, (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? null : e));
      // A directory (or a file we may not remove) at the lock path: no retry can take it.
      if (gone) throw new RcptgateError(ErrorCodes.CONFIG_INVALID, `${file.key}: ${lockPath} is in the way of the lock and cannot be removed (${gone.code}); remove it`);
      logger.warn({ key: file.key, lock: lockPath }, 'a stale lock of a stopped instance was removed');
    }
  }
  throw new RcptgateError(ErrorCodes.CONFIG_INVALID, `${file.key}: could not take the lock ${lockPath} (another instance is starting with the same file?)`);
}

function held(file: LockedFile, lockPath: string, h: Holder | null, unreachable?: string): RcptgateError {
  // Not asked: a holder that runs and the socket of one killed (SIGKILL, a crash) whose mode or
  // owner changed since look the same. Said to be running, the operator looked for an instance
  // that does not exist and the service stayed down.
  if (!h && unreachable) {
    return new RcptgateError(
      ErrorCodes.CONFIG_INVALID,
      `${file.key} ${file.path} may be in use by another instance: its lock ${lockPath} could not be asked: ${unreachable} (its mode or owner forbids it); two instances must not write one file: if no other instance runs, remove ${lockPath}`,
    );
  }
  const who = h ? `pid ${h.pid} on ${h.host}, running since ${h.since}` : 'a process that does not say who it is';
  return new RcptgateError(
    ErrorCodes.CONFIG_INVALID,
    `${file.key} ${file.path} is in use by another running instance (${who}; lock ${lockPath}): two instances must not write one file, give each its own path`,
  );
}

function listen(server: Server, path: string): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const onError = (err: NodeJS.ErrnoException) => resolve(err);
    server.once('error', onError);
    try {
      server.listen(path, () => {
        server.off('error', onError);
        server.unref();
        resolve(null);
      });
    } catch (err) {
      resolve(err as NodeJS.ErrnoException);
    }
  });
}

async function inode(path: string): Promise<number | null> {
  return lstat(path).then((s) => s.ino, () => null);
}

/**
 * Whether something listens at `path`, and what it says of itself. Only a refused connection
 * means nobody listens: one the socket's mode forbids (EACCES: another user's lock) or a full
 * backlog (EAGAIN) was taken for a dead holder, whose lock was then removed while it ran.
 */
async function ask(path: string): Promise<{ alive: boolean; holder: Holder | null; ino: number | null; unreachable?: string }> {
  const ino = await inode(path);
  return new Promise((resolve) => {
    const socket = createConnection(path);
    let text = '';
    let connected = false;
    const done = (alive: boolean, unreachable?: string) => {
      clearTimeout(timer);
      socket.destroy();
      let holder: Holder | null = null;
      try {
        holder = JSON.parse(text) as Holder;
      } catch {
        holder = null;
      }
      resolve({ alive, holder, ino, ...(unreachable ? { unreachable } : {}) });
    };
    const timer = setTimeout(() => done(connected), ASK_TIMEOUT_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => (connected = true));
    socket.on('data', (c: string) => (text = (text + c).slice(0, 4096)));
    socket.on('end', () => done(true));
    socket.on('error', (e: NodeJS.ErrnoException) => {
      const nobody = e.code === 'ECONNREFUSED' || e.code === 'ENOENT';
      done(connected || !nobody, connected || nobody ? undefined : e.code ?? e.message);
    });
  });
}

async function unlock(server: Server, path: string, ino: number): Promise<void> {
  // Only our own lock: closing unlinks the path, and one a later instance took over stays.
  if ((await inode(path)) !== ino) return;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await unlink(path).catch(() => undefined);
}
