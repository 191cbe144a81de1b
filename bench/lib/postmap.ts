/**
 * Postfix's own client, `postmap -q - MAP < keys` (one connection, sequential, as smtpd does),
 * with the CPU the postmap process used: it runs under `sh`, which reads its own
 * /proc/PID/stat after waiting for postmap, where the kernel has added postmap's CPU to the
 * shell's cutime/cstime.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireTool } from '../../test/helpers/postfix.js';

/**
 * Quiet time before a measured run. A server measured right after another run (its own, or
 * another contender's on these 2 cores) reads up to a quarter slower than one measured from rest:
 * the last run's work (collector, reaped children) still takes the CPU.
 */
export const SETTLE_MS = 300;
export const settle = (): Promise<void> => sleep(SETTLE_MS);

export interface PostmapRun {
  keys: number;
  found: number;
  seconds: number;
  rate: number;
  /** CPU of the postmap process per key, µs. */
  clientCpuMicros: number;
  stderr: string;
}

/** A config directory with the main.cf client tools need. */
export async function postmapConfigDir(dir: string): Promise<string> {
  await writeFile(path.join(dir, 'main.cf'), 'compatibility_level = 3.6\n');
  return dir;
}

export function postmapRun(configDir: string, mapSpec: string, keyFile: string, keyCount: number): Promise<PostmapRun> {
  const postmap = requireTool('postmap');
  const statFile = path.join(configDir, `postmap-${process.hrtime.bigint()}.stat`);
  const script = '"$0" -c "$1" -q - "$2" < "$3"; rc=$?; cat /proc/$$/stat > "$4"; exit $rc';
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('sh', ['-c', script, postmap, configDir, mapSpec, keyFile, statFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let found = 0;
    let partial = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      const text = partial + d;
      const end = text.lastIndexOf('\n');
      partial = text.slice(end + 1);
      for (let i = text.indexOf('\t'); i >= 0 && i < end; i = text.indexOf('\t', i + 1)) found++;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.once('error', reject);
    child.once('close', () => {
      clearTimeout(timer);
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      void readFile(statFile, 'utf8')
        .then((stat) => {
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          const cpuMs = ((Number(f[13]) + Number(f[14])) * 1000) / 100;
          if (/fatal/i.test(stderr)) throw new Error(`postmap ${mapSpec}: ${stderr.trim().slice(0, 400)}`);
          resolve({ keys: keyCount, found, seconds, rate: keyCount / seconds, clientCpuMicros: (cpuMs * 1000) / keyCount, stderr });
        })
        .catch(reject);
    });
  });
}

/** ldap_table(5) config with the same filter and result as rcptgate's openldap preset. */
export async function writeLdapTable(dir: string, name: string, port: number, baseDN: string): Promise<string> {
  const file = path.join(dir, `${name}.cf`);
  const lines = [
    `server_host = ldap://127.0.0.1:${port}`,
    'version = 3',
    'bind = no',
    `search_base = ${baseDN}`,
    'scope = sub',
    'query_filter = (|(mail=%s)(mailAlternateAddress=%s))',
    'result_attribute = mail',
    'size_limit = 16',
    'timeout = 10',
  ];
  // Postfix's smtpd (user postfix) reads it too.
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o644 });
  return file;
}
