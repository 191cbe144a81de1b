/** The real helm binary (scripts/install-helm.sh) and `helm template` of the chart, for the chart tests. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CHART = join(ROOT, 'helm/rcptgate');
/** Building helm from source can take that long on a fresh machine. */
export const HELM_INSTALL_MS = 20 * 60_000;

/** The helm binary's path; fails naming the tool when it cannot be had. */
export async function installHelm(): Promise<string> {
  const { stdout } = await exec('bash', [join(ROOT, 'scripts/install-helm.sh')], { timeout: HELM_INSTALL_MS });
  const helm = stdout.trim().split('\n').pop() ?? '';
  assert.ok(helm && existsSync(helm), `scripts/install-helm.sh printed no usable helm path (helm is required): ${stdout}`);
  return helm;
}

/** `helm template mx CHART ...args`: the manifests, or helm's error text when it refuses the values. */
export async function helmTemplate(helm: string, args: string[]): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout } = await exec(helm, ['template', 'mx', CHART, ...args], { maxBuffer: 32 << 20, timeout: 120_000 });
    return { ok: true, output: stdout };
  } catch (err) {
    const e = err as { stderr?: string; code?: unknown };
    if (typeof e.code !== 'number') throw err;
    return { ok: false, output: e.stderr ?? '' };
  }
}
