/**
 * End to end through a real MX: a private Postfix backup MX (test/helpers/postfix.ts) whose
 * relay_recipient_maps is rcptgate's socketmap or Postfix's native ldap: table, driven by
 * Postfix's own `smtp-source`. Accepted recipients are put on HOLD (nothing leaves); every RCPT
 * reply is read back from the MX's log and checked against ground truth. Postfix logs HOLD once
 * per message, so a WARN action before it logs each accepted recipient.
 *
 * Ground truth: smtp-source -N numbers recipients 1@example.com, 2@example.com, …; the benchmark
 * directory holds exactly the odd numbers up to `numberedUsers` (numberedLdif).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { requireTool, startPostfix, type PostfixInstance } from '../../test/helpers/postfix.js';
import { treeCpuMillis } from './cpu.js';

/** LDIF for uid=nK (mail K@example.com) for every odd K up to `count`. */
export function numberedLdif(count: number): string {
  const out: string[] = [];
  for (let k = 1; k <= count; k += 2) out.push(`dn: uid=n${k},ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: n${k}\ncn: N ${k}\nsn: ${k}\nmail: ${k}@example.com\n`);
  return out.join('\n');
}

export interface Mx {
  instance: PostfixInstance;
  port: number;
  /** CPU of the whole instance so far (master, live daemons, reaped daemons), ms. */
  cpuMillis(): Promise<number>;
}

export async function startMx(relayRecipientMaps: string): Promise<Mx> {
  const instance = await startPostfix({
    mainCf: {
      relay_domains: 'example.com',
      relay_recipient_maps: relayRecipientMaps,
      smtpd_recipient_restrictions: 'reject_unauth_destination, reject_unlisted_recipient, check_recipient_access static:WARN, check_recipient_access static:HOLD',
    },
  });
  const masterPid = async () => Number((await readFile(path.join(instance.dir, 'queue', 'pid', 'master.pid'), 'utf8')).trim());
  return {
    instance,
    port: instance.port,
    cpuMillis: async () => treeCpuMillis(await masterPid()),
  };
}

export interface SmtpCounts {
  /** RCPT replies by code (250 = accepted, put on hold). */
  codes: Record<string, number>;
  rcpts: number;
  /** Replies that differ from the expected one. */
  wrong: number;
  /** A few examples of wrong replies. */
  examples: string[];
}

/** `smtp-source -A -N -s SESSIONS -m MESSAGES -r RCPTS -t @example.com` against the MX. */
export function smtpSource(port: number, sessions: number, messages: number, rcpts: number): Promise<void> {
  const bin = requireTool('postfix').replace(/postfix$/, 'smtp-source');
  return new Promise((resolve, reject) => {
    execFile(bin, ['-A', '-N', '-s', String(sessions), '-m', String(messages), '-r', String(rcpts), '-f', 'bench@client.example', '-t', '@example.com', `127.0.0.1:${port}`], { timeout: 600_000, maxBuffer: 64 << 20 }, (err, _stdout, stderr) => {
      // smtp-source warns on every rejected RCPT (-A keeps it going); only a crash is an error.
      if (err && err.killed) reject(new Error(`smtp-source timed out: ${stderr.slice(-500)}`));
      else if (err && !/recipient rejected/.test(stderr)) reject(new Error(`smtp-source failed: ${err.message} ${stderr.slice(-500)}`));
      else resolve();
    });
  });
}

const ACCEPTED = /: warn: RCPT from .*; from=<[^>]*> to=<(\d+)@example\.com>/;
const REJECTED = /: reject: RCPT from [^:]*: (\d{3}) [\d.]+ <(\d+)@example\.com>/;

/**
 * Tallies the RCPT replies in Postfix log text: `warn` lines (our WARN action) are accepted
 * recipients (250), `reject` lines carry their code. `expect(n)` is the right code for n@example.com.
 */
export function tallyReplies(log: string, expect: (n: number) => number): SmtpCounts {
  const counts: SmtpCounts = { codes: {}, rcpts: 0, wrong: 0, examples: [] };
  for (const line of log.split('\n')) {
    const a = ACCEPTED.exec(line);
    const r = a ? null : REJECTED.exec(line);
    if (!a && !r) continue;
    const code = a ? 250 : Number(r![1]);
    const n = Number(a ? a[1] : r![2]);
    counts.codes[code] = (counts.codes[code] ?? 0) + 1;
    counts.rcpts++;
    if (code !== expect(n)) {
      counts.wrong++;
      if (counts.examples.length < 3) counts.examples.push(`${n}@example.com → ${code}`);
    }
  }
  return counts;
}

/**
 * Counts RCPT replies in the log from `offset` on, waiting until `expected` are there (the
 * log daemon writes asynchronously).
 */
export async function countReplies(mx: Mx, offset: number, expected: number, expect: (n: number) => number): Promise<SmtpCounts & { offset: number }> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const log = await mx.instance.maillog();
    const counts = tallyReplies(log.slice(offset), expect);
    if (counts.rcpts >= expected || Date.now() > deadline) return { ...counts, offset: log.length };
    await new Promise((r) => setTimeout(r, 200));
  }
}
