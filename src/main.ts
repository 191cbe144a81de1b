#!/usr/bin/env node
// Only this first: signals that arrive while the rest loads (about half a second after each
// start) are held, not met by Node's defaults (early-signals.ts). The commands load after it.
import { releaseEarlySignals } from './cli/early-signals.js';
import { isEntryPoint } from './cli/entry-point.js';

/** The CLI with arguments `argv` (without node and the script); the exit code. */
export async function main(argv: string[]): Promise<number> {
  return (await import('./cli/commands.js')).main(argv);
}

// Run when executed (the bin, `node dist/main`, a link of any name), not when imported by tests.
if (isEntryPoint(import.meta.url, (import.meta as { main?: boolean }).main)) {
  import('./cli/commands.js').then(
    (cli) => cli.runCli(),
    (e: unknown) => {
      process.stderr.write(`rcptgate: ${(e as Error)?.stack ?? String(e)}\n`);
      process.exit(70);
    },
  );
} else {
  // Imported (tests): the process keeps its own signal handling.
  releaseEarlySignals();
}
