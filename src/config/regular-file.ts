import { closeSync, constants, fstatSync, openSync, readFileSync, type Stats } from 'node:fs';

/** What a path that is no regular file holds, for messages: "a directory", "a FIFO", … */
export function nonRegularKind(info: Stats): string {
  return info.isDirectory() ? 'a directory' : info.isFIFO() ? 'a FIFO' : info.isSocket() ? 'a socket' : 'a device';
}

/**
 * The content of a file the config names (the config itself, secrets, the CA, the LDIF, address
 * lists), read only when it is a regular file. Read whole, a FIFO blocks the process until some
 * writer appears (at start, or at a SIGHUP reload with every front end stalled) and a device
 * such as /dev/zero fills memory: both are refused, naming what the path is. Opened non-blocking,
 * so that open() itself does not wait for a FIFO's writer.
 */
export function readRegularFileSync(path: string): Buffer;
export function readRegularFileSync(path: string, encoding: 'utf8'): string;
export function readRegularFileSync(path: string, encoding?: 'utf8'): Buffer | string {
  // O_NOCTTY: a terminal at the path must not become the service's controlling terminal.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) throw new Error(`not a regular file: ${nonRegularKind(info)}`);
    return encoding === undefined ? readFileSync(fd) : readFileSync(fd, encoding);
  } finally {
    closeSync(fd);
  }
}
