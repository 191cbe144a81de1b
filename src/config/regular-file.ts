import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';

/** What a path that is no regular file holds, for messages: "a directory", "a FIFO", … */
export function nonRegularKind(info: Stats): string {
  return info.isDirectory() ? 'a directory' : info.isFIFO() ? 'a FIFO' : info.isSocket() ? 'a socket' : 'a device';
}

export function notRegular(info: Stats): Error {
  return new Error(`not a regular file: ${nonRegularKind(info)}`);
}

/**
 * How a file we read is opened, before fstat says whether it is a regular one: non-blocking, so
 * that open() does not wait for a FIFO's writer, and without taking a terminal at the path as the
 * service's controlling terminal.
 */
export const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY;

/**
 * The content of a file the config names (the config itself, secrets, the CA, the LDIF, address
 * lists), read only when it is a regular file. Read whole, a FIFO blocks the process until some
 * writer appears (at start, or at a SIGHUP reload with every front end stalled) and a device
 * such as /dev/zero fills memory: both are refused, naming what the path is (READ_FLAGS).
 */
export function readRegularFileSync(path: string): Buffer;
export function readRegularFileSync(path: string, encoding: 'utf8', maxBytes?: number): string;
export function readRegularFileSync(path: string, encoding?: 'utf8', maxBytes = Infinity): Buffer | string {
  const fd = openSync(path, READ_FLAGS);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw notRegular(info);
    if (info.size > maxBytes) throw new Error(`${info.size} bytes, more than the ${maxBytes} allowed: is it the right file?`);
    return encoding === undefined ? readFileSync(fd) : readFileSync(fd, encoding);
  } finally {
    closeSync(fd);
  }
}

/**
 * Why a secret file could not be read, for messages. A value with no "/" may be the secret itself,
 * set where its file belongs (RCPTGATE_ADMIN_TOKEN_FILE=<token>): it is not echoed, nor is the
 * system error that would quote it.
 */
export function secretFileProblem(path: string, err: unknown): string {
  if (path.includes('/')) return `${path}: ${(err as Error).message}`;
  const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
  return `(not shown: a value without "/" may be the secret itself; give the file's path): ${code}`;
}
