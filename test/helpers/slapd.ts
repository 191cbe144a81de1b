/**
 * A private OpenLDAP slapd for integration tests: its own temp dir, config, mdb database and a
 * free port on 127.0.0.1, started in the foreground so the test owns its pid.
 *
 *   const ldap = await startSlapd();            // fixture below, plain LDAP
 *   after(() => ldap.close());                  // stop + remove the temp dir
 *
 * Options: `ldifFiles` / `ldifText` (extra entries, content records only: they go through
 * slapadd before the start), `fixture: false` (only the suffix, the OUs and the service
 * account), `generatedUsers: N` (uid=user1..userN, mail userK@example.com, bulk-loaded with
 * slapadd: 100,000 take a few seconds), `tls: true` (a fresh CA and server certificate; LDAPS
 * on `ldapsUrl`, StartTLS on `url`, trust `caFile`), `serviceSizeLimit: N` (the service
 * account may get at most N entries per unpaged search; paged searches stay unlimited).
 *
 * Control: stop() (SIGTERM, waits), start() (same port and data), kill() (SIGKILL, waits),
 * pause()/resume() (SIGSTOP/SIGCONT: TCP connects still succeed, nothing answers;
 * await pause()), modify(ldif)
 * (ldapmodify -a as the rootdn: changetype records or plain entries to add), revokeReader() /
 * restoreReader() (with `revocableReader`), reconfigure({ serviceSizeLimit, servicePagedLimit })
 * (rewrites the limits, restarts).
 *
 * Needs slapd, slapadd (Debian: slapd), ldapmodify (ldap-utils) and, for `tls`, openssl;
 * fails with a message naming the missing one.
 *
 * Fixture (test/fixtures/ldap/example.ldif), all under ou=people / ou=groups of dc=example,dc=com:
 *
 * | DN (rdn)              | mail / mailAlternateAddress                                          | note |
 * |-----------------------|----------------------------------------------------------------------|------|
 * | uid=alice             | alice@example.com, alice.smith@example.com / ally@example.com         | canonical alice@example.com; objectClass mailRecipient (test schema) |
 * | uid=bob               | bob@example.com                                                      | |
 * | uid=carol             | Carol.Mixed@example.com                                              | mixed case in the directory |
 * | cn=staff (ou=groups)  | staff@example.com                                                    | groupOfNames + extensibleObject, members alice, bob |
 * | uid=mallory           | mallory@example.com                                                  | disabled: `employeeType: disabled`, excluded by DISABLED_EXCLUDING_FILTER (the default openldap filter still finds it) |
 * | uid=dave              | dave@example.org                                                     | second domain |
 * | uid=info-buecher      | info@xn--bcher-kva.example                                           | IDN domain bücher.example (A-label) |
 * | uid=first-last        | first-last@example.com                                               | for recipientDelimiter "-" |
 * | uid=user1 … uid=user5 | user1@example.com … user5@example.com                                | same shape as generatedUsers (which replace them) |
 *
 * Accounts: rootdn `cn=admin,dc=example,dc=com` / `admin-secret` (writes, no limits);
 * service `cn=rcptgate,ou=services,dc=example,dc=com` / `service-secret` (read-only,
 * size=unlimited unless `serviceSizeLimit`); anonymous may read too (not userPassword).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';

export const FIXTURE_DIR = path.resolve(import.meta.dirname, '../fixtures/ldap');
export const EXAMPLE_LDIF = path.join(FIXTURE_DIR, 'example.ldif');
export const TEST_SCHEMA = path.join(FIXTURE_DIR, 'rcptgate-test.schema');
/** The openldap lookup filter, minus entries marked `employeeType: disabled` (mallory). */
export const DISABLED_EXCLUDING_FILTER = '(&(|(mail=%s)(mailAlternateAddress=%s))(!(employeeType=disabled)))';

const BASE_DN = 'dc=example,dc=com';
const ADMIN_DN = `cn=admin,${BASE_DN}`;
const ADMIN_PASSWORD = 'admin-secret';
const SERVICE_DN = `cn=rcptgate,ou=services,${BASE_DN}`;
const SERVICE_PASSWORD = 'service-secret';

export interface SlapdOptions {
  /** Load test/fixtures/ldap/example.ldif (default true). */
  fixture?: boolean;
  /** Extra LDIF files (content records) loaded after the fixture. */
  ldifFiles?: string[];
  /** Extra LDIF text (content records) loaded after the files. */
  ldifText?: string[];
  /** Bulk-load uid=user1..userN (mail userK@example.com); replaces the fixture's user1..user5. */
  generatedUsers?: number;
  /** Generate a CA + server certificate; serve LDAPS on `ldapsUrl` and StartTLS on `url`. */
  tls?: boolean;
  /** Cap unpaged searches of the service account at N entries (default: unlimited). */
  serviceSizeLimit?: number;
  /** Cap the entries a paged search of the service account may return in total (default: unlimited). */
  servicePagedLimit?: number;
  /**
   * ou=people is readable only by members of cn=readers,ou=groups (the service account and the
   * rootdn): revokeReader() / restoreReader() take the service account's read rights away and
   * back, as a directory admin's ACL change would. Searches then succeed with fewer entries.
   */
  revocableReader?: boolean;
  /** Raw slapd `limits` clause for the service account (e.g. `size.unchecked=0`); overrides the limits above. */
  serviceLimits?: string;
  /** Load the syncprov overlay (RFC 4533 content synchronization) with a session log. */
  syncprov?: boolean;
  /** A schema file to include instead of TEST_SCHEMA (it must define mailAlternateAddress and mailRecipient). */
  schemaFile?: string;
  /** Attributes everyone may search with but not read: a filter on them matches, their values never come back. */
  searchOnly?: string[];
  /** Modules to load (from /usr/lib/ldap), e.g. `ppolicy`. */
  modules?: string[];
  /** Lines at the end of the database section: overlays and their settings. */
  databaseLines?: string[];
  /** `access` lines placed before the rule that lets everyone read everything. */
  accessLines?: string[];
}

export interface Slapd {
  /** ldap://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** ldaps://127.0.0.1:PORT (only with `tls`). */
  readonly ldapsUrl: string | undefined;
  readonly ldapsPort: number | undefined;
  /** PEM file of the CA that signed the server certificate (only with `tls`). */
  readonly caFile: string | undefined;
  readonly baseDN: string;
  readonly adminDN: string;
  readonly adminPassword: string;
  readonly serviceDN: string;
  readonly servicePassword: string;
  /** The temp dir holding config, data and certificates. */
  readonly dir: string;
  /** pid of the running slapd, undefined while stopped. */
  readonly pid: number | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  /** SIGSTOP; resolves once the kernel reports the process stopped (it may run on briefly after the signal). */
  pause(): Promise<void>;
  resume(): void;
  modify(ldif: string): Promise<void>;
  /** modify() with the Relax Rules control: a record may carry its own modifyTimestamp (a lagging server's, say). */
  modifyRelaxed(ldif: string): Promise<void>;
  /** Only with `revocableReader`: drop / restore the service account's membership of cn=readers. */
  revokeReader(): Promise<void>;
  restoreReader(): Promise<void>;
  /** Rewrites the limits in the config and restarts slapd (same port and data). */
  reconfigure(limits: Pick<SlapdOptions, 'serviceSizeLimit' | 'servicePagedLimit'>): Promise<void>;
  close(): Promise<void>;
}

/** Finds a program on PATH (plus the sbin dirs, often missing from a non-root PATH). */
export function findTool(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

/** Every path, or throws naming each missing tool and its Debian package. */
export function requireTools(...names: string[]): Record<string, string> {
  const packages: Record<string, string> = { slapd: 'slapd', slapadd: 'slapd', ldapmodify: 'ldap-utils', openssl: 'openssl' };
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const name of names) {
    const p = findTool(name);
    if (p) found[name] = p;
    else missing.push(`${name} (Debian package ${packages[name] ?? name})`);
  }
  if (missing.length) throw new Error(`test LDAP server needs ${missing.join(', ')}: not found on PATH`);
  return found;
}

/** A port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

function run(file: string, args: string[], input?: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${path.basename(file)} ${args.join(' ')} exited ${code}: ${stderr.trim() || stdout.trim()}`));
    });
    // A tool that exits without reading its input (most take none) must not fail the test with EPIPE.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

export interface CertificateAuthority {
  caFile: string;
  keyFile: string;
}

/** A throwaway CA (EC P-256, 2 days) written to dir/NAME-ca.pem + NAME-ca.key. */
export async function createCertificateAuthority(dir: string, name = 'test'): Promise<CertificateAuthority> {
  const { openssl } = requireTools('openssl');
  const caFile = path.join(dir, `${name}-ca.pem`);
  const keyFile = path.join(dir, `${name}-ca.key`);
  await run(openssl!, [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyFile, '-out', caFile, '-days', '2', '-subj', `/CN=rcptgate ${name} CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { caFile, keyFile };
}

/** A server certificate for 127.0.0.1 and localhost signed by `ca`. */
async function createServerCertificate(dir: string, ca: CertificateAuthority): Promise<{ certFile: string; keyFile: string }> {
  const { openssl } = requireTools('openssl');
  const keyFile = path.join(dir, 'server.key');
  const csrFile = path.join(dir, 'server.csr');
  const certFile = path.join(dir, 'server.pem');
  const extFile = path.join(dir, 'server.ext');
  await run(openssl!, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csrFile, '-subj', '/CN=127.0.0.1']);
  await writeFile(extFile, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  await run(openssl!, ['x509', '-req', '-in', csrFile, '-CA', ca.caFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', extFile]);
  return { certFile, keyFile };
}

function baseLdif(): string {
  return `dn: ${BASE_DN}
objectClass: dcObject
objectClass: organization
dc: example
o: Example

dn: ou=people,${BASE_DN}
objectClass: organizationalUnit
ou: people

dn: ou=groups,${BASE_DN}
objectClass: organizationalUnit
ou: groups

dn: ou=services,${BASE_DN}
objectClass: organizationalUnit
ou: services

dn: ${SERVICE_DN}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: rcptgate
userPassword: ${SERVICE_PASSWORD}

`;
}

const READERS_DN = `cn=readers,ou=groups,${BASE_DN}`;

function readersLdif(): string {
  return `dn: ${READERS_DN}\nobjectClass: groupOfNames\ncn: readers\nmember: ${ADMIN_DN}\nmember: ${SERVICE_DN}\n\n`;
}

function generatedUser(k: number): string {
  return `dn: uid=user${k},ou=people,${BASE_DN}\nobjectClass: inetOrgPerson\nuid: user${k}\ncn: User ${k}\nsn: ${k}\nmail: user${k}@example.com\n\n`;
}

/** Drops the fixture's uid=userK entries that generated users replace. */
function withoutGenerated(ldif: string, count: number): string {
  return ldif
    .split(/\n\s*\n/)
    .filter((block) => {
      const m = /^dn: uid=user(\d+),ou=people,/m.exec(block);
      return !(m && Number(m[1]) <= count);
    })
    .join('\n\n');
}

async function writeData(file: string, options: SlapdOptions): Promise<void> {
  const out = createWriteStream(file);
  const write = (text: string) => (out.write(text) ? Promise.resolve() : once(out, 'drain').then(() => undefined));
  await write(baseLdif());
  if (options.revocableReader) await write(readersLdif());
  const generated = options.generatedUsers ?? 0;
  if (options.fixture ?? true) await write(`${withoutGenerated(await readFile(EXAMPLE_LDIF, 'utf8'), generated)}\n\n`);
  for (const f of options.ldifFiles ?? []) await write(`${await readFile(f, 'utf8')}\n\n`);
  for (const text of options.ldifText ?? []) await write(`${text}\n\n`);
  for (let k = 1; k <= generated; k++) await write(generatedUser(k));
  out.end();
  await once(out, 'close');
}

function slapdConf(dir: string, options: SlapdOptions, tls?: { caFile: string; certFile: string; keyFile: string }): string {
  const schemaDir = '/etc/ldap/schema';
  const limit = options.serviceSizeLimit;
  const paged = options.servicePagedLimit === undefined ? 'unlimited' : String(options.servicePagedLimit);
  const serviceLimit =
    options.serviceLimits ??
    (limit === undefined && options.servicePagedLimit === undefined
      ? 'size=unlimited'
      : `size.soft=${limit ?? 'unlimited'} size.hard=${limit ?? 'unlimited'} size.prtotal=${paged}`);
  return [
    ...['core', 'cosine', 'inetorgperson', 'nis'].map((s) => `include ${path.join(schemaDir, `${s}.schema`)}`),
    `include ${options.schemaFile ?? TEST_SCHEMA}`,
    `pidfile ${path.join(dir, 'slapd.pid')}`,
    `argsfile ${path.join(dir, 'slapd.args')}`,
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    ...(options.syncprov ? ['moduleload syncprov'] : []),
    ...(options.modules ?? []).map((m) => `moduleload ${m}`),
    ...(tls ? [`TLSCACertificateFile ${tls.caFile}`, `TLSCertificateFile ${tls.certFile}`, `TLSCertificateKeyFile ${tls.keyFile}`] : []),
    'database mdb',
    'maxsize 1073741824',
    `suffix "${BASE_DN}"`,
    `rootdn "${ADMIN_DN}"`,
    `rootpw ${ADMIN_PASSWORD}`,
    `directory ${path.join(dir, 'data')}`,
    'index objectClass eq',
    'index uid eq',
    'index mail,mailAlternateAddress eq,sub',
    `limits dn.exact="${SERVICE_DN}" ${serviceLimit}`,
    'access to attrs=userPassword by anonymous auth by * none',
    ...(options.revocableReader ? [`access to dn.subtree="ou=people,${BASE_DN}" by group.exact="${READERS_DN}" read by * none`] : []),
    ...(options.searchOnly?.length ? [`access to attrs=${options.searchOnly.join(',')} by * search`] : []),
    ...(options.accessLines ?? []),
    'access to * by * read',
    ...(options.syncprov ? ['overlay syncprov', 'syncprov-checkpoint 100 1', 'syncprov-sessionlog 1000'] : []),
    ...(options.databaseLines ?? []),
    '',
  ].join('\n');
}

/** Waits until something accepts TCP connections on port, or the child exits. */
async function waitForPort(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`slapd exited (${child.exitCode ?? child.signalCode}) before listening on ${port}: ${stderr().trim()}`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`slapd did not listen on 127.0.0.1:${port} within 15s: ${stderr().trim()}`);
}

export async function startSlapd(options: SlapdOptions = {}): Promise<Slapd> {
  const tools = requireTools('slapd', 'slapadd', 'ldapmodify', ...(options.tls ? ['openssl'] : []));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-slapd-'));
  try {
    await mkdir(path.join(dir, 'data'));
    let tlsFiles: { caFile: string; certFile: string; keyFile: string } | undefined;
    if (options.tls) {
      const ca = await createCertificateAuthority(dir, 'slapd');
      tlsFiles = { caFile: ca.caFile, ...(await createServerCertificate(dir, ca)) };
    }
    const conf = path.join(dir, 'slapd.conf');
    await writeFile(conf, slapdConf(dir, options, tlsFiles));
    const writeConf = (limits: Pick<SlapdOptions, 'serviceSizeLimit' | 'servicePagedLimit'>) => writeFile(conf, slapdConf(dir, { ...options, ...limits }, tlsFiles));
    const data = path.join(dir, 'data.ldif');
    await writeData(data, options);
    await run(tools.slapadd!, ['-q', '-f', conf, '-l', data]);
    const port = await freePort();
    let ldapsPort: number | undefined;
    while (options.tls && (ldapsPort === undefined || ldapsPort === port)) ldapsPort = await freePort();
    return await SlapdInstance.launch(dir, conf, port, ldapsPort, tlsFiles?.caFile, tools, writeConf);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

class SlapdInstance implements Slapd {
  readonly baseDN = BASE_DN;
  readonly adminDN = ADMIN_DN;
  readonly adminPassword = ADMIN_PASSWORD;
  readonly serviceDN = SERVICE_DN;
  readonly servicePassword = SERVICE_PASSWORD;
  readonly url: string;
  readonly ldapsUrl: string | undefined;
  private child: ChildProcess | undefined;
  private stderr = '';

  private constructor(
    readonly dir: string,
    private readonly conf: string,
    readonly port: number,
    readonly ldapsPort: number | undefined,
    readonly caFile: string | undefined,
    private readonly tools: Record<string, string>,
    private readonly writeConf: (limits: Pick<SlapdOptions, 'serviceSizeLimit' | 'servicePagedLimit'>) => Promise<void>,
  ) {
    this.url = `ldap://127.0.0.1:${port}`;
    this.ldapsUrl = ldapsPort === undefined ? undefined : `ldaps://127.0.0.1:${ldapsPort}`;
  }

  static async launch(
    dir: string,
    conf: string,
    port: number,
    ldapsPort: number | undefined,
    caFile: string | undefined,
    tools: Record<string, string>,
    writeConf: (limits: Pick<SlapdOptions, 'serviceSizeLimit' | 'servicePagedLimit'>) => Promise<void>,
  ): Promise<SlapdInstance> {
    const instance = new SlapdInstance(dir, conf, port, ldapsPort, caFile, tools, writeConf);
    await instance.start();
    return instance;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async start(): Promise<void> {
    if (this.child) throw new Error('slapd is already running');
    const listeners = [`ldap://127.0.0.1:${this.port}/`, ...(this.ldapsPort ? [`ldaps://127.0.0.1:${this.ldapsPort}/`] : [])];
    // `-d 0` keeps slapd in the foreground (our child, our pid) without debug output.
    const child = spawn(this.tools.slapd!, ['-d', '0', '-f', this.conf, '-h', listeners.join(' ')], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    this.stderr = '';
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    try {
      await waitForPort(this.port, child, () => this.stderr);
      if (this.ldapsPort) await waitForPort(this.ldapsPort, child, () => this.stderr);
    } catch (err) {
      await this.signalAndWait('SIGKILL');
      throw err;
    }
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.child = undefined;
      return;
    }
    const exited = once(child, 'exit');
    child.kill(signal);
    // A stopped process only acts on SIGTERM once continued.
    if (signal !== 'SIGKILL') child.kill('SIGCONT');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
      this.child = undefined;
    }
  }

  stop(): Promise<void> {
    return this.signalAndWait('SIGTERM');
  }

  kill(): Promise<void> {
    return this.signalAndWait('SIGKILL');
  }

  async pause(): Promise<void> {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('slapd is not running');
    this.child!.kill('SIGSTOP');
    // Linux: wait until every thread shows state T, so no request slips through after pause().
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const tasks = await readdir(`/proc/${pid}/task`).catch(() => null);
      if (tasks === null) return; // no procfs: the signal is all we can do
      const states = await Promise.all(tasks.map((t) => readFile(`/proc/${pid}/task/${t}/stat`, 'utf8').catch(() => 'x (x) T ')));
      if (states.every((stat) => /\) [Tt] /.test(stat))) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`slapd (pid ${pid}) did not stop after SIGSTOP`);
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async modify(ldif: string): Promise<void> {
    await run(this.tools.ldapmodify!, ['-a', '-x', '-H', this.url, '-D', this.adminDN, '-w', this.adminPassword], ldif);
  }

  async modifyRelaxed(ldif: string): Promise<void> {
    await run(this.tools.ldapmodify!, ['-x', '-H', this.url, '-D', this.adminDN, '-w', this.adminPassword, '-e', 'relax'], ldif);
  }

  revokeReader(): Promise<void> {
    return this.modify(`dn: ${READERS_DN}\nchangetype: modify\ndelete: member\nmember: ${SERVICE_DN}\n`);
  }

  restoreReader(): Promise<void> {
    return this.modify(`dn: ${READERS_DN}\nchangetype: modify\nadd: member\nmember: ${SERVICE_DN}\n`);
  }

  async reconfigure(limits: Pick<SlapdOptions, 'serviceSizeLimit' | 'servicePagedLimit'>): Promise<void> {
    await this.stop();
    await this.writeConf(limits);
    await this.start();
  }

  async close(): Promise<void> {
    try {
      await this.stop();
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}

/** For tests that need a port where nothing listens (a dead first URL). */
export async function closedPortUrl(): Promise<string> {
  return `ldap://127.0.0.1:${await freePort()}`;
}
