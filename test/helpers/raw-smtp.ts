/**
 * Raw SMTP sessions sending each command exactly as given (swaks would rewrite RCPT arguments).
 * Text is sent as UTF-8.
 */
import assert from 'node:assert/strict';
import net from 'node:net';

/** A reply line and the milliseconds from sending its command to receiving it. */
export interface TimedReply {
  reply: string;
  ms: number;
}

/**
 * One SMTP session from `clientAddress`: the greeting is awaited, then each command is sent and
 * the reply line to it returned with its time, in order (a multi-line reply: its last line).
 */
export async function timedSmtpSession(port: number, commands: string[], clientAddress = '127.0.0.1'): Promise<TimedReply[]> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress: clientAddress });
  socket.setEncoding('utf8');
  let buffered = '';
  const waiters: ((line: string) => void)[] = [];
  socket.on('data', (d: string) => {
    buffered += d;
    for (let nl = buffered.indexOf('\r\n'); nl >= 0; nl = buffered.indexOf('\r\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 2);
      if (line[3] !== '-') waiters.shift()?.(line);
    }
  });
  const closed = new Promise<never>((_, reject) => socket.once('close', () => reject(new Error(`SMTP connection closed; so far: ${buffered}`))));
  closed.catch(() => undefined);
  socket.on('error', () => undefined); // seen as the close
  const reply = () => Promise.race([new Promise<string>((resolve) => waiters.push(resolve)), closed]);
  try {
    await reply();
    const out: TimedReply[] = [];
    for (const command of commands) {
      const r = reply();
      const start = performance.now();
      socket.write(`${command}\r\n`);
      out.push({ reply: await r, ms: performance.now() - start });
    }
    return out;
  } finally {
    socket.destroy();
  }
}

/** The same session, replies only. */
export async function smtpSession(port: number, commands: string[], clientAddress = '127.0.0.1'): Promise<string[]> {
  return (await timedSmtpSession(port, commands, clientAddress)).map((r) => r.reply);
}

export async function rawRcpts(port: number, clientAddress: string, from: string, rcptArgs: string[]): Promise<string[]> {
  const replies = await smtpSession(port, ['EHLO client.rcptgate.test', `MAIL FROM:<${from}>`, ...rcptArgs.map((a) => `RCPT TO:${a}`), 'QUIT'], clientAddress);
  return replies.slice(2, 2 + rcptArgs.length);
}

/**
 * One session with the `unknown` RCPTs, then the `valid` ones, then `more`: each unknown must
 * get 550 5.1.1 and each valid 250. Returns the replies to `more`.
 */
export async function assertUnknownThenValid(port: number, clientAddress: string, from: string, unknown: string[], valid: string[], more: string[] = []): Promise<string[]> {
  const got = await rawRcpts(port, clientAddress, from, [...unknown, ...valid, ...more]);
  for (const [i, arg] of unknown.entries()) assert.match(got[i]!, /^550 5\.1\.1 /, `RCPT TO:${arg} -> ${got[i]}`);
  for (const [i, arg] of valid.entries()) assert.match(got[unknown.length + i]!, /^250 /, `RCPT TO:${arg} -> ${got[unknown.length + i]}`);
  return got.slice(unknown.length + valid.length);
}

/**
 * Source routes through a domain Postfix counts as its own (its address literal; by default also
 * localhost and $myhostname): Postfix strips it and routes the rest to example.com, and
 * reject_unauth_destination lets it through, while a front end sees a domain that is not ours.
 */
export const SOURCE_ROUTED = {
  unknown: ['<"nobody@example.com"@[127.0.0.1]>', '<"nobody%example.com"@[127.0.0.1]>', '<"example.com!nobody"@[127.0.0.1]>', '<nobody%example.com@[127.0.0.1]>'],
  valid: ['<"alice@example.com"@[127.0.0.1]>', '<alice%example.com@[127.0.0.1]>'],
};
