/**
 * `npm run bench`: one run, every figure against a ceiling or baseline measured in the same
 * run, each target printed with PASS/FAIL, written to bench/RESULTS.md (full runs only).
 *
 * It starts its own slapd (generated users plus numbered ones for the end-to-end ground truth),
 * compiles its C tools with the system compiler, and runs rcptgate as the real CLI in child
 * processes with DEFAULT settings. Scenarios (all by default, or `--only a,b`):
 *   postmap  warm/cold `postmap -q -` vs a C do-nothing responder and native ldap:, CPU per lookup
 *   profile  CPU profile of rcptgate on the warm and cold postmap paths (top self-time frames)
 *   ceiling  cold lookups at 32 connections vs slapd's own single-search rate
 *   flood    one and 200 attacker connections vs a victim's cold lookups; batching vs batchSize 1
 *   e2e      smtp-source → private Postfix MX → rcptgate or native ldap: (warm, cold, 5 ms, down)
 *   http     HTTP single lookup vs a bare express route
 *   memory   cache and snapshot memory figures
 *   regress  old build (git, REGRESS_COMMIT) against the working tree: warm and cold postmap, same run
 * `npm run bench -- --only e2e` runs one; `--messages N` sets the e2e size (default 1000).
 * A partial run prints its table but leaves bench/RESULTS.md alone.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { VERSION } from '../src/version.js';
import { findTool, startSlapd, type Slapd } from '../test/helpers/slapd.js';
import { KeySupply, type Context } from './lib/context.js';
import { enableMonitor } from './lib/monitor.js';
import { numberedLdif } from './lib/mx.js';
import { compileTools } from './lib/native.js';
import { ChildSet, ROOT } from './lib/procs.js';
import { consoleTable, fmt, markdownTable, type Row } from './lib/report.js';
import { ceilingScenario } from './scenarios/ceiling.js';
import { e2eScenario } from './scenarios/e2e.js';
import { floodScenario } from './scenarios/flood.js';
import { httpScenario } from './scenarios/http.js';
import { HEAP_BUDGET, memoryScenario } from './scenarios/memory.js';
import { postmapScenario } from './scenarios/postmap.js';
import { profileScenario } from './scenarios/profile.js';
import { REGRESS_COMMIT, REGRESS_KEYS, regressScenario } from './scenarios/regress.js';

const SCENARIOS = ['postmap', 'profile', 'ceiling', 'flood', 'e2e', 'http', 'memory', 'regress'] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values } = parseArgs({ options: { only: { type: 'string' }, messages: { type: 'string', default: '1000' } } });
const only = values.only ? values.only.split(',').map((s) => s.trim()) : [...SCENARIOS];
for (const s of only) if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario "${s}": choose from ${SCENARIOS.join(', ')}`);
const ONLY = new Set(only as Scenario[]);
const FULL_RUN = SCENARIOS.every((s) => ONLY.has(s));
const MESSAGES = Number(values.messages);

const USERS = 160_000 + REGRESS_KEYS;
/** Users K@example.com for odd K up to this: ground truth for smtp-source's numbered recipients. */
const NUMBERED = 10_000;
const RUN_LIMIT_MS = 25 * 60_000;

const t0 = Date.now();
const loadAtStart = os.loadavg();
const log = (line: string) => process.stdout.write(`[bench ${((Date.now() - t0) / 1000).toFixed(0)}s] ${line}\n`);

async function main(): Promise<void> {
  const children = new ChildSet();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-'));
  await chmod(dir, 0o755); // Postfix's daemons (user postfix) read the ldap: table files here
  let slapd: Slapd | null = null;
  const watchdog = setTimeout(() => {
    log(`run exceeded ${RUN_LIMIT_MS / 60_000} minutes: stopping`);
    void children.stopAll().then(() => slapd?.close()).finally(() => process.exit(2));
  }, RUN_LIMIT_MS);
  watchdog.unref();
  const rows: Row[] = [];
  const notes: string[] = [];
  const sections: string[] = [];
  let compiler = '';
  try {
    const tools = compileTools(dir);
    compiler = tools.compiler;
    log(`compiled the C tools with ${compiler}`);
    log(`slapd with ${USERS.toLocaleString('en-US')} generated users and ${(NUMBERED / 2).toLocaleString('en-US')} numbered ones (slapadd)`);
    slapd = await startSlapd({ generatedUsers: USERS, fixture: false, ldifText: [numberedLdif(NUMBERED)] });
    await enableMonitor(slapd);
    log(`slapd on ${slapd.url}, cn=Monitor enabled`);
    const ctx: Context = { dir, slapd, tools, children, rows, notes, sections, log, keys: new KeySupply(USERS), numberedUsers: NUMBERED };
    const steps: Array<[Scenario, () => Promise<void>]> = [
      ['postmap', () => postmapScenario(ctx)],
      ['profile', () => profileScenario(ctx)],
      ['ceiling', () => ceilingScenario(ctx)],
      ['flood', () => floodScenario(ctx)],
      ['e2e', () => e2eScenario(ctx, MESSAGES)],
      ['http', () => httpScenario(ctx)],
      ['memory', () => memoryScenario(ctx, USERS + NUMBERED / 2)],
      ['regress', () => regressScenario(ctx)],
    ];
    for (const [name, step] of steps) {
      if (!ONLY.has(name)) continue;
      log(`--- ${name}`);
      try {
        await step();
      } catch (err) {
        // One broken scenario must not hide the others' figures: it is reported as a failure.
        const message = err instanceof Error ? err.message : String(err);
        log(`${name} failed: ${message}`);
        notes.push(`Scenario ${name} failed: ${message.split('\n')[0]}`);
        rows.push({ section: name, what: `scenario ${name} ran to the end`, value: 0, unit: '', target: { text: 'completes', pass: false } });
      }
      await children.stopAll();
    }

    const elapsed = (Date.now() - t0) / 1000;
    process.stdout.write(`\n${consoleTable(rows)}\n\n${notes.map((n) => `note: ${n}`).join('\n')}\n${sections.join('\n\n')}\n\nTotal ${fmt(elapsed)} s\n`);
    if (FULL_RUN) {
      await writeFile(path.join(ROOT, 'bench', 'RESULTS.md'), resultsMarkdown(rows, notes, sections, elapsed, compiler));
      log('wrote bench/RESULTS.md');
    } else {
      log(`partial run (${[...ONLY].join(', ')}): bench/RESULTS.md left as it was`);
    }
  } finally {
    await children.stopAll();
    await slapd?.close();
    await rm(dir, { recursive: true, force: true });
    clearTimeout(watchdog);
  }
}

function version(cmd: string, args: string[], pattern: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return pattern.exec(out)?.[1] ?? out.trim().split('\n')[0]!;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string };
    return pattern.exec(`${e.stdout ?? ''}${e.stderr ?? ''}`)?.[1] ?? 'unknown';
  }
}

function resultsMarkdown(rows: Row[], notes: string[], sections: string[], elapsed: number, compiler: string): string {
  const cpus = os.cpus();
  const slapdPath = findTool('slapd');
  const passed = rows.filter((r) => r.target?.pass).length;
  const targets = rows.filter((r) => r.target).length;
  return `# rcptgate benchmark results

Written by \`npm run bench\` (bench/run.ts). Every figure comes from one run on this machine; each
ratio compares with a baseline measured in the same run. ${passed} of ${targets} targets met.
The machine is shared and loaded: absolute figures are noisy; ratios within one run are what counts.

- Date: ${new Date().toISOString()}
- Machine: ${cpus.length} cores (${cpus[0]?.model ?? 'unknown'}), ${fmt(os.totalmem() / 1024 ** 3)} GiB memory, ${os.type()} ${os.release()}
- Versions: rcptgate ${VERSION}, Node ${process.version}, OpenLDAP slapd ${slapdPath ? version(slapdPath, ['-VV'], /slapd ([\d.]+)/) : 'not found'}, Postfix ${version('postconf', ['-d', 'mail_version'], /= (\S+)/)}, C tools built with ${compiler}
- Load average (1/5/15 min) at start: ${loadAtStart.map((x) => x.toFixed(2)).join(' / ')}, at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')}
- Run: \`npm run bench\`, ${fmt(elapsed)} s end to end

## Results

${markdownTable(rows)}

## Notes

${notes.map((n) => `- ${n}`).join('\n') || '- none'}

${sections.join('\n\n')}

## How each figure is measured

- Setup: a private slapd (OpenLDAP, mdb, \`index mail,mailAlternateAddress eq,sub\`, cn=Monitor enabled) bulk-loaded
  with ${USERS.toLocaleString('en-US')} users \`userK@example.com\` and ${(NUMBERED / 2).toLocaleString('en-US')} users \`K@example.com\` (odd K ≤ ${NUMBERED.toLocaleString('en-US')}).
  rcptgate runs as deployed: compiled once per run (\`tsc -p tsconfig.build.json\`, as \`npm start\` and the image do) and started as \`node dist/main.js serve\`, in its own process, with the product's
  DEFAULT settings (pool size, in-flight limits, cache, timeouts); only listen addresses, the domain, the
  directory URL and base DN, the admin token and \`log.level: warn\` are set. Every scenario starts its own instance.
  Keys: 70 % existing users, 30 % unknown, shuffled; every cold run gets users no earlier run touched.
- C tools (bench/c/, compiled at bench time with \`cc -O2\`): \`null-socketmap\` answers \`OK <key>\` to every netstring
  at once — the Postfix client's true ceiling; \`loadgen\` drives sequential socketmap or LDAP clients (LDAP: hand-written
  BER, anonymous, the openldap preset's filter, attributes and size limit) and the flood attacker.
- postmap: \`postmap -q - MAP < keys\` (one sequential connection, as smtpd does), 10,000 keys. Warm: best of 3 alternating
  rounds of the C responder, the Node do-nothing responder (bench/servers/null-socketmap.ts, for reference), rcptgate (keys cached beforehand) and native \`ldap:\` (ldap_table(5), same filter,
  \`result_attribute = mail\`). Cold: 2 rounds on 10,000 fresh keys, rcptgate's cache flushed (\`DELETE /v1/cache\`) before
  each. Every run, warm or cold, starts after 300 ms of quiet, so no contender pays for the work the run before it left
  on these 2 cores. CPU from /proc/PID/stat (utime+stime, 10 ms ticks) of rcptgate and slapd around each run; postmap's own CPU from
  the cutime/cstime of the shell that waited for it. slapd's CPU per search = its CPU during the native \`ldap:\` runs
  (one search per lookup) ÷ lookups. LDAP searches per lookup from slapd's cn=Monitor (monitorOpCompleted of searches).
- profile: a separate rcptgate under \`node --cpu-prof\`; samples are cut to the monotonic-clock window of each phase.
- Steady state: before its cold measurements (postmap cold, ceiling, e2e), rcptgate runs 2 s windows of cold lookups
  (C client, 32 connections, cache flushed, the scenario's own warm-up keys) until two windows' CPU per lookup are within
  5 % (3 to 8 windows): a long-running service is measured, not the JIT compiling it (the first seconds of cold
  lookups cost up to twice the steady figure).
- ceiling: slapd's own single-search rate with the C LDAP client at 4, 8, 16, 32 and 64 sequential connections (3 s each);
  the best concurrency is slapd's. Then 5 rounds alternate slapd alone at that concurrency and rcptgate cold (C socketmap
  client, 32 sequential connections, cache flushed), 3 s each, the same 60,000 keys for both (slapd's entry cache in the
  same state); the figure is the median over rounds of rcptgate ÷ slapd in the same round.
- flood: a victim (C client from 127.0.0.2, one connection, sequential) asks 300 valid users not cached, 15 s allowed;
  baseline: the same lookups with no flood. Attacker (C, from 127.0.0.1): 1 or 200 connections pipelining
  \`nobody-<random>@example.com\` as fast as the server reads them, for 17 s; the victim starts 1 s in. A fresh rcptgate
  for every run. Peak RSS: rcptgate's VmRSS sampled every 50 ms.
  Searches per answered lookup: slapd's cn=Monitor count ÷ (victim + attacker answers other than TEMP).
- e2e: \`smtp-source -A -N -s 10 -m M -r 5 -t @example.com\` (10 sessions, 5 RCPT per message, numbered recipients,
  every even one unknown) into a private Postfix backup MX (relay_domains example.com, accepted recipients put on HOLD);
  M = ${MESSAGES} (half behind the proxy, a fifth when down). RCPT replies are counted in the MX's log
  and compared with ground truth (healthy: 250 odd / 550 even; directory down: 451 for all). CPU per RCPT: Postfix
  (master + daemons, live and reaped) + rcptgate + slapd over the smtp-source run. 5 ms away: bench/servers/delay-proxy.ts
  delays every chunk 5 ms each way (netem is not available) in front of slapd, for both contenders; rcptgate with
  default settings. With 10 sequential sessions and distinct recipients, every cold RCPT waits one round trip on
  either side, so RCPT/s can only pull ahead where answers need fewer round trips than lookups. Down: slapd
  stopped, rcptgate's cache flushed. Warm floor: the same run against the C and the Node do-nothing socketmap
  responders (bench/c/null-socketmap.c, bench/servers/null-socketmap.ts), each behind its own MX, every RCPT accepted:
  what one reply per wake-up costs a server that does no work.
- http: autocannon, 10 connections, 4 s, one cached address, against bench/servers/bare-express.ts.
- memory: bench/memory/cache-rss.ts (1,000,000 cached answers, default V8 flags and \`${HEAP_BUDGET.join(' ')}\`),
  bench/memory/snapshot.ts (1,000,000 generated addresses), and \`rcptgate sync\` against the benchmark slapd.
  Start to ready: the product as deployed (compiled, \`node dist/main.js serve\`) with its snapshot file, from spawn
  to its first listener, median of 3, with the stages before the load, the load and loaded-to-listening; the
  previous store's figure is the like-for-like tsx child. Lookup p50: 7 interleaved rounds, hits and misses apart,
  every miss an address never asked before (for both sizes), so no miss is an answer-cache hit.
- regress: the old build (commit ${REGRESS_COMMIT}, \`git archive\` into a temporary directory, its dependencies shared when
  its package-lock.json is the same, else \`npm ci\`) and the working tree run side by side, each as the real CLI with
  default settings (each gets the config its own \`config check\` accepts). \`postmap -q -\` in 61 alternating rounds per
  phase (each round runs both builds once, the order swaps every round), after an unmeasured JIT warm-up of each: warm,
  2,000 cached keys a run; cold, cache flushed and 1,000 fresh keys per build and round. CPU: rcptgate's time on CPU from
  /proc/PID/task/*/schedstat (ns). Figures are medians over the rounds; the verdict uses the median of the per-round
  new ÷ old ratios: PASS when its 95 % sign-test interval reaches 1 and excludes a 10 % regression (see the regress section).
`;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
