/** Child processes of the benchmark: started with a pid we own, stopped by that pid. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { waitForPort } from '../../test/helpers/ports.js';

export const ROOT = path.resolve(import.meta.dirname, '../..');

export interface Child {
  readonly pid: number;
  readonly process: ChildProcess;
  /** stdout + stderr so far (tail), for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * Runs a TypeScript file with `node --import tsx` (or compiled JavaScript, `compiled: true`),
 * waits until it accepts on `port`. `cwd` (default: this checkout) is where tsx and the tsconfig
 * are found: another build's own tree.
 */
export async function startNode(
  script: string,
  args: string[],
  port: number,
  options: { nodeArgs?: string[]; what: string; env?: NodeJS.ProcessEnv; cwd?: string; compiled?: boolean },
): Promise<Child> {
  const loader = options.compiled ? [] : ['--import', 'tsx'];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, script, ...args], {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const handle: Child = {
    pid: child.pid!,
    process: child,
    output: () => out,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
  try {
    await Promise.race([
      waitForPort(port, 30_000, options.what),
      exited.then(() => {
        throw new Error(`${options.what} exited before listening: ${out.trim().slice(-2000)}`);
      }),
    ]);
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

/** Every child started, so a failure anywhere still stops them all (by pid). */
export class ChildSet {
  private readonly children: Child[] = [];
  add(c: Child): Child {
    this.children.push(c);
    return c;
  }
  async stopAll(): Promise<void> {
    await Promise.all(this.children.splice(0).map((c) => c.stop()));
  }
}

let built = false;

/**
 * Compiles the product once per benchmark process (\`tsc -p tsconfig.build.json\`, as \`npm start\`
 * and the image do), so rcptgate is measured as deployed, not through tsx's on-the-fly transform.
 */
export function buildProduct(): string {
  if (!built) {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' });
    built = true;
  }
  return path.join(ROOT, 'dist/main.js');
}
