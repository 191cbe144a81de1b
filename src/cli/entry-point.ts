import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Whether the module at `moduleUrl` is the program Node was asked to run (so the CLI runs), not
 * one imported by a test. Matching the script's name missed `node dist/main serve` and links of
 * other names: the process then exited 0 without a word. Node 22.18/24.2 and later say so
 * themselves (`import.meta.main`; a loader such as tsx leaves it unset); before, the path Node
 * was given is resolved as Node resolves it (links followed, `.js` added) and compared.
 */
export function isEntryPoint(moduleUrl: string, metaMain: boolean | undefined, script = process.argv[1]): boolean {
  if (typeof metaMain === 'boolean') return metaMain;
  if (!script) return false;
  const self = fileURLToPath(moduleUrl);
  for (const candidate of [script, `${script}.js`, `${script}.ts`]) {
    try {
      if (realpathSync(candidate) === self) return true;
    } catch {
      // Not there under this spelling: try the next.
    }
  }
  return false;
}
