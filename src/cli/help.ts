import { VERSION } from '../version.js';

/** The --help texts, by command. */
export const HELP: Record<string, string> = {
  main: `rcptgate ${VERSION} — recipient validation for mail servers

Usage:
  rcptgate serve [--config FILE]            run all listeners
  rcptgate check [--config FILE] [--explain] ADDRESS...
                                            one-shot lookup: ADDRESS<TAB>VERDICT<TAB>detail
  rcptgate sync [--config FILE]             one full directory sync, writes the snapshot
  rcptgate config check [--config FILE]     validate and print the effective config

Options:
  -c, --config FILE   YAML config (default: $RCPTGATE_CONFIG, else the example directory)
  -h, --help          this help
  -V, --version       print the version

Exit status of check: 0 all valid, 1 any unknown or not_ours, 64 bad usage or invalid address,
75 any tempfail, 78 bad configuration.`,
  serve: `Usage: rcptgate serve [--config FILE]
Runs the HTTP, socketmap, policy and milter listeners of the config. Without a config it serves
the bundled example directory. SIGTERM/SIGINT drain and exit; SIGHUP reloads config and flushes the cache.`,
  check: `Usage: rcptgate check [--config FILE] [--explain] ADDRESS...
Prints ADDRESS<TAB>VERDICT<TAB>detail per address. --explain adds the rule that decided.
Exit: 0 all valid, 1 any unknown/not_ours, 64 usage or invalid, 75 any tempfail, 78 bad config.`,
  sync: `Usage: rcptgate sync [--config FILE]
Runs one full directory sync, writes sync.snapshotPath, prints counts and time.`,
  config: `Usage: rcptgate config check [--config FILE]
Validates the configuration and prints the effective config (secrets redacted).
Exit 0, or 78 with every problem listed by key path.`,
};
