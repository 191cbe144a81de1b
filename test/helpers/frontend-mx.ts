/**
 * A policy or milter server on the split engine (LDIF example.com / example.org, a stopped slapd
 * for example.net: split-engine.ts) behind a private Postfix MX that asks it: the set-up of the
 * tests that drive those front ends through a real Postfix. Harvest protection refuses (421) from
 * the `maxUnknown + 1`th unknown recipient of a client within 10 minutes.
 */
import assert from 'node:assert/strict';
import { HarvestGuard } from '../../src/gate/harvest.js';
import { createMilterServer } from '../../src/milter/server.js';
import type { TcpServer } from '../../src/net/tcp-server.js';
import { createPolicyServer } from '../../src/policy/server.js';
import { requirePostfixTools, startPostfix, type PostfixInstance } from './postfix.js';
import { smtpSession } from './raw-smtp.js';
import { startSplitEngine, type SplitEngine } from './split-engine.js';

export interface FrontendMx {
  engine: SplitEngine;
  server: TcpServer;
  mx: PostfixInstance;
  close(): Promise<void>;
}

export interface FrontendMxOptions {
  maxUnknown?: number;
  /** main.cf settings added to (or replacing) the defaults, given the front end's port. */
  mainCf?: (port: number) => Record<string, string>;
}

/** Lets loopback clients name a client and a login with XCLIENT (as a proxy in front would), and keeps error limits from cutting a session short. */
export const XCLIENT_CF: Record<string, string> = {
  smtpd_sasl_auth_enable: 'yes',
  smtpd_authorized_xclient_hosts: '127.0.0.0/8',
  smtpd_soft_error_limit: '100',
  smtpd_hard_error_limit: '100',
};

/** The policy server in smtpd_recipient_restrictions, or the milter in smtpd_milters (tempfail when it fails), unless `mainCf` says otherwise. */
export async function startFrontendMx(frontend: 'policy' | 'milter', options: FrontendMxOptions = {}): Promise<FrontendMx> {
  requirePostfixTools();
  const engine = await startSplitEngine();
  let server: TcpServer | undefined;
  try {
    const { validator, metrics, logger } = engine;
    const harvest = new HarvestGuard({ maxUnknown: options.maxUnknown ?? 2, windowMs: 600_000, action: 'reject' });
    const create = frontend === 'policy' ? createPolicyServer : createMilterServer;
    const started = create({ validator, metrics, logger, harvest, maxConnections: 50, idleTimeoutMs: 300_000 });
    server = started;
    const { port } = await started.listen('127.0.0.1:0');
    const hook: Record<string, string> =
      frontend === 'policy'
        ? { smtpd_recipient_restrictions: `reject_unauth_destination, check_policy_service inet:127.0.0.1:${port}, permit` }
        : { smtpd_milters: `inet:127.0.0.1:${port}`, milter_default_action: 'tempfail' };
    const mx = await startPostfix({
      mainCf: { relay_domains: 'example.com, example.org, example.net', smtpd_error_sleep_time: '0', ...hook, ...options.mainCf?.(port) },
    });
    const close = async (): Promise<void> => {
      await mx.close();
      await started.close(1000);
      await engine.close();
    };
    return { engine, server: started, mx, close };
  } catch (err) {
    await server?.close(1000);
    await engine.close();
    throw err;
  }
}

/**
 * RCPT replies of one session from `address`, logged in as `login` when given (XCLIENT, XCLIENT_CF).
 * Postfix hangs up after a 421, so the session has no QUIT; one cut short otherwise fails with smtpd's log.
 */
export async function xclientRcpts(mx: PostfixInstance, address: string, login: string | null, rcptTo: string[]): Promise<string[]> {
  const xclient = `XCLIENT ADDR=${address}${login === null ? '' : ` LOGIN=${login}`}`;
  const commands = ['EHLO client.rcptgate.test', xclient, 'EHLO client.rcptgate.test', 'MAIL FROM:<sender@example.com>', ...rcptTo.map((r) => `RCPT TO:<${r}>`)];
  try {
    return (await smtpSession(mx.port, commands)).slice(4);
  } catch (err) {
    const log = (await mx.maillog()).split('\n').filter((l) => l.includes('RCPT from'));
    assert.fail(`session of ${address} (login ${login}) ended early: ${(err as Error).message}\n${log.slice(-5).join('\n')}`);
  }
}
