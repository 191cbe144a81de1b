import { createApp, type App } from '../../src/app/app.js';
import { validateConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/log.js';

/**
 * The service as `rcptgate serve` builds it from `config` (validated; the bundled example directory
 * unless it names another), started on its listeners, its logs silent. `env` stands for the
 * process environment (secrets such as RCPTGATE_LDAP_BIND_PASSWORD). Close it with `app.close()`.
 */
export async function startApp(config: unknown, env: NodeJS.ProcessEnv = {}): Promise<App> {
  const app = await createApp({ loaded: { config: validateConfig(config), file: null }, logger: createLogger('silent'), env });
  await app.start();
  return app;
}
