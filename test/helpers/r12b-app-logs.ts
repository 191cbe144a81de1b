import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';

/** The service as `rcptgate serve` builds it from `config`, started, with its log lines (JSON, info and up) kept in `lines`. */
export async function startAppWithLogs(config: unknown, env: NodeJS.ProcessEnv = {}): Promise<{ app: App; lines: string[] }> {
  const lines: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
  const app = await createApp({ loaded: { config: validateConfig(config), file: null }, logger, env });
  await app.start();
  return { app, lines };
}
