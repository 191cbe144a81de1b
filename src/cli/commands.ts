/**
 * The rcptgate commands (serve, check, sync, config check). Loaded by main.ts only after its
 * signal handlers are in place (early-signals.ts): loading all of this takes about half a second.
 */
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { loadConfig, redact, type LoadedConfig } from '../config/load.js';
import { resolveConfig } from '../config/resolve.js';
import { ConfigError, RcptgateError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { VERSION } from '../version.js';
import { HELP } from './help.js';
import { bindAccountRefused, checkExitCode, EXIT, formatCheckLine, lookupsAtOnce } from './check.js';
import { listenExitCode, listenFailure } from './start-failure.js';
import { untilStopped } from './until-stopped.js';
import { createApp } from '../app/app.js';
import { exposureWarnings } from '../config/exposure.js';
import { progressBar } from '../snapshot/progress.js';
import { mapLimit } from '../http/lookup.js';
import { releaseEarlySignals } from './early-signals.js';
import { ignoreUserSignals, USER_SIGNAL_MESSAGE, type UserSignal } from './user-signals.js';
import { createDirectory } from '../directory/index.js';
import { Metrics } from '../metrics.js';

/** Where an ignored SIGUSR1/SIGUSR2 is reported: stderr, or serve's log once it has one. */
let reportUserSignal = (signal: UserSignal, ignored: number): void =>
  err(`rcptgate: ${signal} ${USER_SIGNAL_MESSAGE}${ignored ? ` (${ignored} more since the last report)` : ''}`);

/** The reader of stdout went away (`rcptgate check … | head -1`, `grep -q`): what is left is dropped. */
let stdoutGone = false;
function out(line: string): void {
  if (!stdoutGone) process.stdout.write(line + '\n');
}
function err(line: string): void {
  process.stderr.write(line + '\n');
}

function load(file: string | undefined): LoadedConfig | number {
  try {
    return loadConfig(file);
  } catch (e) {
    if (e instanceof RcptgateError) {
      err(`rcptgate: ${e.message}`);
      return EXIT.CONFIG;
    }
    throw e;
  }
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
        explain: { type: 'boolean' },
      },
    });
  } catch (e) {
    err(`rcptgate: ${(e as Error).message}\n\n${HELP.main}`);
    return EXIT.USAGE;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.version) {
    out(VERSION);
    return EXIT.OK;
  }
  if (values.help) {
    out(HELP[command ?? 'main'] ?? HELP.main!);
    return EXIT.OK;
  }
  // `--config "$FILE"` with $FILE unset: no file would mean the bundled example directory, whose
  // domains are not the operator's (serve would answer every real domain "not ours").
  if (values.config === '') return usage('--config needs a file name (it was given an empty one)', command ?? 'main');
  switch (command) {
    case 'serve':
      if (rest.length > 0) return usage(`serve takes no arguments`, 'serve');
      return serve(values.config);
    case 'check':
      if (rest.length === 0) return usage('check needs at least one address', 'check');
      return check(values.config, rest, values.explain === true);
    case 'sync':
      if (rest.length > 0) return usage('sync takes no arguments', 'sync');
      return sync(values.config);
    case 'config':
      if (rest.length !== 1 || rest[0] !== 'check') return usage('expected "config check"', 'config');
      return configCheck(values.config);
    case undefined:
      return usage('missing command', 'main');
    default:
      return usage(`unknown command "${command}"`, 'main');
  }
}

function usage(message: string, topic: string): number {
  err(`rcptgate: ${message}\n\n${HELP[topic] ?? HELP.main}`);
  return EXIT.USAGE;
}

function configCheck(file: string | undefined): number {
  try {
    const { config, file: used } = loadConfig(file);
    // Secrets, the CA file and the override lists too: exactly what `serve` would refuse.
    const { warnings } = resolveConfig(config, process.env, used);
    checkDirectory(config);
    out(`# ${used ? `config ${used}` : 'no config file: built-in defaults'} is valid; effective configuration:`);
    // Warnings go to stderr: stdout stays valid YAML.
    for (const w of warnings ?? []) err(`warning: ${w.path}: ${w.message}`);
    for (const w of exposureWarnings(config)) err(`${w.level}: ${w.path}: ${w.message}`);
    out(stringify(redact(config)).replace(/\n$/, ''));
    return EXIT.OK;
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`rcptgate: ${e.issues.length} configuration problem${e.issues.length === 1 ? '' : 's'}:`);
      for (const i of e.issues) err(`  ${i.path || '(root)'}: ${i.message}`);
      return EXIT.CONFIG;
    }
    if (e instanceof RcptgateError) {
      err(`rcptgate: ${e.message}`);
      return EXIT.CONFIG;
    }
    throw e;
  }
}

/** Builds the directory as serve does (the LDIF file read and parsed; nothing connects), so its errors show here too. */
function checkDirectory(config: LoadedConfig['config']): void {
  try {
    void createDirectory(config, { logger: createLogger('silent'), metrics: new Metrics() }).close();
  } catch (e) {
    if (e instanceof ConfigError || !(e instanceof RcptgateError) || config.directory.kind !== 'ldif') throw e;
    throw new ConfigError([{ path: 'directory.ldif.path', message: e.message }]);
  }
}

/**
 * check and sync hold nothing a stop must finish (a snapshot write cut short leaves the old file).
 * As PID 1 (a Kubernetes Job) a signal without a handler is ignored: they ran on until SIGKILL.
 */
function exitOnStop(): void {
  process.on('SIGTERM', () => process.exit(128 + 15)).on('SIGINT', () => process.exit(128 + 2));
  releaseEarlySignals();
}

async function check(file: string | undefined, addresses: string[], explain: boolean): Promise<number> {
  exitOnStop();
  const loaded = load(file);
  if (typeof loaded === 'number') return loaded;
  // Logs go to stderr so stdout stays one line per address.
  const logger = createLogger(loaded.config.log.level === 'info' ? 'warn' : loaded.config.log.level, { write: (s: string) => process.stderr.write(s) } as never);
  const app = await appOrExit(loaded, logger);
  if (typeof app === 'number') return app;
  try {
    await app.prepare();
    // Always ask for the explanation: the detail column names the rule that decided. At most as
    // many lookups at once as the directory's connections carry: thousands asked together (a list
    // through xargs) waited in its queue past directory.ldap.timeout and came back tempfail.
    const lookup = (a: string) => app.validator.lookup(a, { frontend: 'cli', explain: true });
    const results = await mapLimit(addresses, lookupsAtOnce(loaded.config), lookup);
    for (const r of results) {
      out(formatCheckLine(r));
      if (explain && r.explain) out(`  explain: ${JSON.stringify(r.explain)}`);
    }
    const code = checkExitCode(results.map((r) => r.verdict));
    // Not a passing failure: a caller retrying on 75 would retry for ever, each try one more
    // refused bind towards an account lockout.
    if (code === EXIT.TEMPFAIL && (await bindAccountRefused(app))) {
      err('rcptgate: the directory refused the bind account: check directory.ldap.bindDN and the bind password (bindPasswordFile or RCPTGATE_LDAP_BIND_PASSWORD)');
      return EXIT.CONFIG;
    }
    return code;
  } finally {
    await app.close();
  }
}

/** The app, or EXIT.CONFIG after one line: unreadable secrets or files are a report, not a stack trace. */
async function appOrExit(loaded: Parameters<typeof createApp>[0]['loaded'], logger: Parameters<typeof createApp>[0]['logger']): Promise<Awaited<ReturnType<typeof createApp>> | number> {
  try {
    return await createApp({ loaded, logger });
  } catch (e) {
    if (e instanceof RcptgateError) {
      err(`rcptgate: ${e.message}`);
      return EXIT.CONFIG;
    }
    throw e;
  }
}

async function sync(file: string | undefined): Promise<number> {
  exitOnStop();
  const loaded = load(file);
  if (typeof loaded === 'number') return loaded;
  if (!loaded.config.sync.enabled) {
    // A configuration matter, not a passing failure: a cron job retrying on 75 would never succeed.
    err('rcptgate: sync needs sync.enabled: true and sync.snapshotPath in the configuration');
    return EXIT.CONFIG;
  }
  const logger = createLogger(loaded.config.log.level, { write: (s: string) => process.stderr.write(s) } as never);
  const app = await appOrExit(loaded, logger);
  if (typeof app === 'number') return app;
  try {
    // On a terminal, a progress bar on stderr (entries listed, rate, time left).
    const tty = process.stderr.isTTY;
    const report = await app.syncOnce(tty ? (p) => process.stderr.write(`\r${progressBar(p)}\x1b[K`) : undefined);
    if (tty) process.stderr.write('\r\x1b[K');
    out(report);
    return EXIT.OK;
  } catch (e) {
    err(`rcptgate: sync failed: ${(e as Error).message}`);
    return e instanceof ConfigError ? EXIT.CONFIG : EXIT.TEMPFAIL;
  } finally {
    await app.close();
  }
}

async function serve(file: string | undefined): Promise<number> {
  const loaded = load(file);
  if (typeof loaded === 'number') return loaded;
  if (Object.values(loaded.config.listen).every((l) => l === null)) {
    // It would run, answer nobody and look healthy to a process supervisor.
    err('rcptgate: every listener is disabled (listen.http, socketmap, policy, milter and metrics are all null): nothing to serve');
    return EXIT.CONFIG;
  }
  const logger = createLogger(loaded.config.log.level);
  reportUserSignal = (signal, ignored) => logger.warn({ signal, ignored }, USER_SIGNAL_MESSAGE);
  let app: Awaited<ReturnType<typeof createApp>> | undefined;
  // Node's default for SIGHUP is to exit: one sent while starting (a config reloader reacting to
  // the same change) would kill the process silently. It is kept for when the listeners are up.
  let started = false;
  let reloadWhenStarted = false;
  // Once stopping, a reload would replace the engine being drained, and the answer file be saved
  // from the new one's cache, emptied when directory or domain settings changed.
  let stopping = false;
  process.on('SIGHUP', () => {
    if (stopping) logger.info('SIGHUP ignored: stopping');
    else if (started && app) void app.reload(file);
    else reloadWhenStarted = true;
  });
  // As PID 1 (the container image) a signal without a handler is ignored: a SIGTERM while the
  // snapshot loaded was lost, and the process served on until SIGKILL. Until the listeners are
  // up nothing has been answered or written: such a signal ends the process at once. Once they
  // are, it waits for the start to end (the data file lock) and stops as usual, saving answers.
  let stopWhenStarted: NodeJS.Signals | null = null;
  const stopWhileStarting = (signal: NodeJS.Signals): void => {
    if (app && Object.keys(app.addresses).length > 0) return void (stopWhenStarted ??= signal);
    logger.info({ signal }, 'stopping before the listeners opened');
    logger.flush(() => process.exit(EXIT.OK));
  };
  process.on('SIGTERM', stopWhileStarting).on('SIGINT', stopWhileStarting);
  releaseEarlySignals();
  try {
    app = await createApp({ loaded, logger });
    await app.start();
    started = true;
    if (reloadWhenStarted) void app.reload(file);
  } catch (e) {
    process.off('SIGTERM', stopWhileStarting).off('SIGINT', stopWhileStarting);
    const listen = listenFailure(e, loaded.config);
    if (listen) logger.fatal({ key: listen.key, code: listen.code }, listen.message);
    else logger.fatal({ err: e }, 'cannot start');
    await new Promise((r) => logger.flush(() => r(undefined)));
    if (listen) return listenExitCode(listen.code);
    return e instanceof RcptgateError ? EXIT.CONFIG : 1;
  }
  return untilStopped(app, logger, () => (stopping = true), stopWhileStarting, () => stopWhenStarted);
}

/** Runs the command line of this process (main.ts, when it is the program Node was asked to run). */
export function runCli(): void {
  // Before the command runs: Node's own SIGUSR1 opens an unauthenticated debugger (user-signals.ts).
  // A reader that stops early made EPIPE an uncaught error: a stack trace and exit 1, "unknown".
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    stdoutGone = true;
  });
  ignoreUserSignals((signal, ignored) => reportUserSignal(signal, ignored));
  main(process.argv.slice(2)).then(
    (code) => {
      // Commands that installed no handlers of their own (config check): what came meanwhile.
      releaseEarlySignals();
      process.exitCode = code;
      // Listeners are closed by now; anything left (a stuck socket) must not keep us alive.
      setTimeout(() => process.exit(code), 1000).unref();
    },
    (e: unknown) => {
      err(`rcptgate: ${(e as Error)?.stack ?? String(e)}`);
      process.exit(70);
    },
  );
}
