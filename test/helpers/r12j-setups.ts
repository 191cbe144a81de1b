/**
 * Every documented setup in front of one rcptgate, each on its own smtpd listener: `relay` (the
 * backup MX: relay_domains and relay_recipient_maps as socketmaps), `proxy` (the same through
 * proxymap), `access` (check_recipient_access socketmap), `policy` (check_policy_service) and
 * `milter` (smtpd_milters, milter_default_action = tempfail). Two private Postfix instances:
 * trivial-rewrite reads relay_domains from main.cf whatever smtpd's `-o` says, so the access,
 * policy and milter setups run on one whose relay_domains is listed in main.cf, and only the
 * front end under test is asked.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.js';
import { startPostfix, type PostfixInstance } from './postfix.js';
import { startServe, type ServeProcess } from './process.js';
import { smtpSession } from './raw-smtp.js';

export type SetupName = 'relay' | 'proxy' | 'access' | 'policy' | 'milter';

export interface SetupsMx {
  /** The socketmap-domains instance (relay, proxy), then the listed-domains one (access, policy, milter). */
  mxs: PostfixInstance[];
  /** smtpd port of each setup. */
  setups: Record<SetupName, number>;
  /** Every instance's log, joined. */
  maillog(): Promise<string>;
  close(): Promise<void>;
}

const QUIET = { smtpd_error_sleep_time: '0', smtpd_soft_error_limit: '100', smtpd_hard_error_limit: '100' };

function smtpd(port: number, opts: Record<string, string>): string {
  return [`127.0.0.1:${port} inet n - n - - smtpd`, ...Object.entries(opts).map(([k, v]) => `  -o { ${k} = ${v} }`)].join('\n');
}

export async function startSetupsMx(gate: { socketmap: number; policy: number; milter: number }): Promise<SetupsMx> {
  const sm = `socketmap:inet:127.0.0.1:${gate.socketmap}`;
  const setups = {} as Record<SetupName, number>;
  for (const name of ['relay', 'proxy', 'access', 'policy', 'milter'] as const) setups[name] = await freePort();
  const mxs: PostfixInstance[] = [];
  const close = async () => {
    for (const mx of mxs) await mx.close();
  };
  try {
    mxs.push(
      await startPostfix({
        mainCf: { relay_domains: `${sm}:domains`, relay_recipient_maps: `${sm}:recipients`, proxy_read_maps: `proxy:${sm}:domains proxy:${sm}:recipients`, ...QUIET },
        masterCfExtra: [smtpd(setups.relay, {}), smtpd(setups.proxy, { relay_domains: `proxy:${sm}:domains`, relay_recipient_maps: `proxy:${sm}:recipients` })].join('\n'),
      }),
    );
    mxs.push(
      await startPostfix({
        mainCf: { relay_domains: 'example.com', relay_recipient_maps: '', ...QUIET },
        masterCfExtra: [
          smtpd(setups.access, { smtpd_recipient_restrictions: `reject_unauth_destination, check_recipient_access ${sm}:access` }),
          smtpd(setups.policy, { smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${gate.policy}` }),
          smtpd(setups.milter, { smtpd_milters: `inet:127.0.0.1:${gate.milter}`, milter_default_action: 'tempfail' }),
        ].join('\n'),
      }),
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { mxs, setups, close, maillog: async () => (await Promise.all(mxs.map((mx) => mx.maillog()))).join('\n') };
}

/**
 * The reply each address got in one session on `port`. A MAIL refused with a 4xx (the milter's
 * tempfail at connect, as milter_default_action = tempfail does) defers every recipient: then
 * that reply stands for each.
 */
export async function rcptReplies(port: number, to: string[]): Promise<string[]> {
  const replies = await smtpSession(port, ['EHLO client.rcptgate.test', 'MAIL FROM:<sender@example.org>', ...to.map((a) => `RCPT TO:<${a}>`)]);
  const mail = replies[1]!;
  if (/^4\d\d /.test(mail)) return to.map(() => mail);
  assert.match(mail, /^250 /, `MAIL on ${port}`);
  return replies.slice(2);
}

/** rcptgate's front ends on fixed free ports (a restarted rcptgate listens where Postfix asks) and its config file. */
export interface GateFiles {
  dir: string;
  cfg: string;
  ports: { socketmap: number; policy: number; milter: number };
}

/** A temp directory holding the config `config(ports)` writes; the caller removes `dir`. */
export async function gateFiles(name: string, config: (ports: GateFiles['ports']) => Record<string, unknown>): Promise<GateFiles> {
  const dir = await mkdtemp(path.join(tmpdir(), `rcptgate-r12j-${name}-`));
  const ports = { socketmap: await freePort(), policy: await freePort(), milter: await freePort() };
  const cfg = path.join(dir, 'rcptgate.json');
  await writeFile(cfg, JSON.stringify(config(ports)));
  return { dir, cfg, ports };
}

/** The listen section with the three socket front ends on `ports` and nothing else. */
export function frontendsOn(ports: GateFiles['ports']): Record<string, string | null> {
  return { http: null, socketmap: `127.0.0.1:${ports.socketmap}`, policy: `127.0.0.1:${ports.policy}`, milter: `127.0.0.1:${ports.milter}`, metrics: null };
}

/** The real `rcptgate serve` on `cfg`, once every front end in `frontends` listens. */
export async function startGate(cfg: string, env: NodeJS.ProcessEnv, frontends: readonly string[] = ['socketmap', 'policy', 'milter']): Promise<ServeProcess> {
  const gate = startServe(['--config', cfg], env);
  try {
    for (const fe of frontends) await gate.waitForLog((l) => l.msg === 'listening' && l.frontend === fe, 30_000);
  } catch (err) {
    await gate.kill();
    throw err;
  }
  return gate;
}
