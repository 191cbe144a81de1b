/**
 * Builds of rcptgate to compare in one run: the working tree, and an older commit materialised
 * from git at bench time (`git archive` into a temporary directory, removed afterwards). Each is
 * run the way bench/lib/rcptgate.ts runs the working tree: the real CLI under tsx, from its own
 * tree, with DEFAULT settings. Only the listeners, the domain, the directory URL and base DN, the
 * admin token and `log.level: warn` are set; where the builds' config schemas differ (a metrics
 * listener), each gets the config its own `config check` accepts.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { freePort } from '../../test/helpers/ports.js';
import type { Slapd } from '../../test/helpers/slapd.js';
import { ROOT, startNode, type Child } from './procs.js';

const run = promisify(execFile);

export interface Build {
  /** Short name for file names and reports ("old", "new"). */
  name: string;
  /** What it is, for the report ("working tree", "46f1e78"). */
  label: string;
  root: string;
  /** How its dependencies were provided (report note). */
  deps: string;
  /** Removes a materialised tree; nothing for the working tree. */
  dispose(): void;
}

export function workingTree(): Build {
  return { name: 'new', label: 'working tree', root: ROOT, deps: 'its own node_modules', dispose: () => undefined };
}

/**
 * `commit` as a tree under os.tmpdir(), with its dependencies: the working tree's node_modules
 * (symlinked) when its package-lock.json is the same, else `npm ci` into the temporary tree.
 */
export function materialiseBuild(commit: string, log: (line: string) => void): Build {
  try {
    execFileSync('git', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('the old-against-new comparison materialises the old build with git: git not found (Debian: apt-get install git)');
  }
  try {
    execFileSync('git', ['-C', ROOT, 'rev-parse', '--verify', '--quiet', `${commit}^{commit}`], { stdio: 'ignore' });
  } catch {
    throw new Error(`commit ${commit} is not in this repository (a shallow clone? git fetch --unshallow)`);
  }
  const root = mkdtempSync(path.join(os.tmpdir(), `rcptgate-build-${commit}-`));
  // The bench's watchdog ends the process with process.exit: the tree must not outlive it either.
  const remove = () => rmSync(root, { recursive: true, force: true });
  process.once('exit', remove);
  const dispose = () => {
    process.off('exit', remove);
    remove();
  };
  try {
    const tar = path.join(root, 'build.tar');
    execFileSync('git', ['-C', ROOT, 'archive', '--format=tar', '-o', tar, commit], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('tar', ['-xf', tar, '-C', root], { stdio: ['ignore', 'ignore', 'pipe'] });
    rmSync(tar);
    const deps = installDependencies(root, log);
    log(`build ${commit} in ${root} (${deps})`);
    return { name: 'old', label: commit, root, deps, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}

function installDependencies(root: string, log: (line: string) => void): string {
  const lock = (dir: string) => {
    const file = path.join(dir, 'package-lock.json');
    if (!existsSync(file)) throw new Error(`${file} is missing: cannot install that build's dependencies`);
    return readFileSync(file, 'utf8');
  };
  if (lock(root) === lock(ROOT)) {
    symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(root, 'node_modules'), 'dir');
    return 'same package-lock.json: node_modules shared with the working tree';
  }
  log('its package-lock.json differs from the working tree\'s: npm ci');
  try {
    // --ignore-scripts: the build runs from source under tsx, so the root's `prepare` (a tsc build) is not needed.
    execFileSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim();
    throw new Error(`npm ci for the old build failed: ${stderr.slice(-1000) || (err as Error).message}`);
  }
  return 'its own package-lock.json: npm ci';
}

export interface BuildInstance extends Child {
  build: Build;
  socketmapPort: number;
  /** Empties the cache (admin API DELETE /v1/cache, in every build), for cold runs. */
  flush(): Promise<void>;
}

export async function startBuild(build: Build, o: { dir: string; slapd: Slapd }): Promise<BuildInstance> {
  const socketmapPort = await freePort();
  const httpPort = await freePort();
  const adminToken = `bench-${build.name}-${process.pid}-${Date.now()}`;
  const tokenFile = path.join(o.dir, `regress-${build.name}.token`);
  await writeFile(tokenFile, adminToken, { mode: 0o600 });
  const listen: Record<string, unknown> = { socketmap: `127.0.0.1:${socketmapPort}`, http: `127.0.0.1:${httpPort}`, policy: null, milter: null };
  const base = {
    listen,
    domains: ['example.com'],
    directory: { kind: 'ldap', ldap: { urls: [`ldap://127.0.0.1:${o.slapd.port}`], baseDN: o.slapd.baseDN } },
    admin: { tokenFile },
    log: { level: 'warn' },
  };
  // A build with a separate metrics listener gets a free port for it (its default is fixed).
  const candidates = [{ ...base, listen: { ...listen, metrics: `127.0.0.1:${await freePort()}` } }, base];
  const file = path.join(o.dir, `regress-${build.name}.yaml`);
  await acceptedConfig(build, file, candidates);
  const child = await startNode(path.join(build.root, 'src/main.ts'), ['serve', '--config', file], socketmapPort, {
    what: `rcptgate (${build.label})`,
    cwd: build.root,
  });
  const flush = async () => {
    const res = await fetch(`http://127.0.0.1:${httpPort}/v1/cache`, { method: 'DELETE', headers: { authorization: `Bearer ${adminToken}` } });
    if (res.status !== 204) throw new Error(`cache flush of ${build.label} answered ${res.status}`);
  };
  return Object.assign(child, { build, socketmapPort, flush });
}

/** Writes to `file` the first candidate the build's own `rcptgate config check` accepts. */
async function acceptedConfig(build: Build, file: string, candidates: object[]): Promise<void> {
  const problems: string[] = [];
  for (const config of candidates) {
    await writeFile(file, stringify(config));
    try {
      await run(process.execPath, ['--import', 'tsx', path.join(build.root, 'src/main.ts'), 'config', 'check', '--config', file], { cwd: build.root });
      return;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      problems.push((e.stderr ?? e.message).trim());
    }
  }
  throw new Error(`build ${build.label} accepts none of the benchmark configs: ${problems.join(' | ')}`);
}
