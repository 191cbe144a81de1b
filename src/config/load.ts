import { isScalar, LineCounter, parseDocument, visit, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue, ErrorCodes, RcptgateError } from '../errors.js';
import { configSchema, type Config, type DomainRule } from './schema.js';
import { envSecret, trimSecret } from './resolve.js';
import { readRegularFileSync, secretFileProblem } from './regular-file.js';
import { crossCheck, domainList, normalizeDomainName } from './checks.js';

export { domainList };

export const ENV_PREFIX = 'RCPTGATE_';
/** Not config keys: the config file path and the bind password. */
const RESERVED_ENV = new Set(['RCPTGATE_CONFIG', 'RCPTGATE_LDAP_BIND_PASSWORD', 'RCPTGATE_ADMIN_TOKEN']);

export interface LoadedConfig {
  config: Readonly<Config>;
  /** Where the file came from, or null for the embedded default. */
  file: string | null;
}

/** camelCase key path → RCPTGATE_UPPER_SNAKE. */
export function envName(path: string[]): string {
  return ENV_PREFIX + path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

/** Every leaf of the fully defaulted config, with its default (decides how env text is coerced). */
function leaves(value: unknown, path: string[] = [], out: Array<{ path: string[]; sample: unknown }> = []) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) leaves(v, [...path, k], out);
  } else {
    out.push({ path, sample: value });
  }
  return out;
}

function coerce(text: string, sample: unknown, path: string[]): unknown {
  if (path.length === 1 && path[0] === 'domains') return splitList(text);
  if (Array.isArray(sample)) return splitList(text);
  if (typeof sample === 'boolean') {
    if (/^(true|1|yes)$/i.test(text)) return true;
    if (/^(false|0|no)$/i.test(text)) return false;
    return text; // the schema reports it
  }
  // Text that is no number stays text: "expected number, received string" beats "received NaN".
  if (typeof sample === 'number') return text.trim() === '' || Number.isNaN(Number(text)) ? text : Number(text);
  if (sample === null && /^(null|)$/i.test(text.trim())) return null;
  if (typeof sample === 'string' || sample === null) return /^null$/i.test(text.trim()) ? null : text;
  return text;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

/** Applies RCPTGATE_* variables onto the raw (file) object. Unknown RCPTGATE_* names are issues. */
export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv, issues: ConfigIssue[]): Map<string, string> {
  /** Key path → the variable that set it, so a bad value is reported where it was written. */
  const origins = new Map<string, string>();
  const defaults = configSchema.parse({});
  const known = new Map<string, { path: string[]; sample: unknown }>();
  for (const leaf of leaves(defaults)) known.set(envName(leaf.path), leaf);
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || text === undefined || RESERVED_ENV.has(name)) continue;
    // Kubernetes injects these for a Service named "rcptgate"; no config key starts with them.
    if (/^RCPTGATE_(SERVICE_(HOST|PORT)|PORT)(_|$)/.test(name)) continue;
    const leaf = known.get(name);
    if (!leaf) {
      issues.push({ path: `env ${name}`, message: 'unknown configuration variable' });
      continue;
    }
    setPath(raw, leaf.path, coerce(text, leaf.sample, leaf.path));
    origins.set(leaf.path.join('.'), name);
  }
  return origins;
}

/** Issues about keys an environment variable set name that variable too. */
function withOrigins(err: ConfigError, origins: Map<string, string>): ConfigError {
  if (origins.size === 0) return err;
  return new ConfigError(
    err.issues.map((i) => {
      const origin = [...origins].find(([path]) => i.path === path || i.path.startsWith(`${path}.`));
      return origin ? { ...i, message: `${i.message} (set by ${origin[1]})` } : i;
    }),
  );
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.map(String).join('.');
}

type SchemaIssue = z.core.$ZodIssue;

/** One schema issue as config issues with full key paths. */
function toConfigIssues(issue: SchemaIssue, prefix: PropertyKey[]): ConfigIssue[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => ({ path: formatPath([...path, key]), message: 'unknown key' }));
  if (issue.code === 'invalid_union') {
    // `domains` is a list or a map: report the problems of the form that was written, not "Invalid input".
    const matching = issue.errors.filter((branch) => !branch.some((i) => i.code === 'invalid_type' && i.path.length === 0));
    if (matching.length === 1) return matching[0]!.flatMap((i) => toConfigIssues(i, path));
  }
  return [{ path: formatPath(path), message: issue.message }];
}

function dropPath(target: Record<string, unknown>, path: string[]): void {
  let node: unknown = target;
  for (const key of path.slice(0, -1)) {
    if (node === null || typeof node !== 'object') return;
    node = (node as Record<string, unknown>)[key];
  }
  if (node !== null && typeof node === 'object') delete (node as Record<string, unknown>)[path[path.length - 1]!];
}

/** Parses and cross-checks a raw object; every problem is listed, none thrown one by one. */
export function validateConfig(raw: unknown, preIssues: ConfigIssue[] = []): Config {
  const issues = [...preIssues];
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    for (const issue of result.error.issues) issues.push(...toConfigIssues(issue, []));
    // Run the cross-checks as well, on the input without the bad keys, so one run lists every problem.
    const pruned = structuredClone(raw ?? {}) as Record<string, unknown>;
    for (const issue of issues) dropPath(pruned, issue.path.split('.'));
    const retry = configSchema.safeParse(pruned);
    if (retry.success) issues.push(...crossCheck(retry.data).filter((c) => !issues.some((i) => i.path === c.path)));
    throw new ConfigError(issues);
  }
  const config = result.data;
  issues.push(...crossCheck(config));
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}

/** Served domains, normalized, with their rules (the plain list form gives empty rules). */
export function domainRules(config: Config): Map<string, DomainRule> {
  const map = new Map<string, DomainRule>();
  if (Array.isArray(config.domains)) {
    for (const d of config.domains) {
      const n = normalizeDomainName(d);
      if (n) map.set(n, {});
    }
  } else {
    for (const [d, rule] of Object.entries(config.domains)) {
      const n = normalizeDomainName(d);
      if (n) map.set(n, rule ?? {});
    }
  }
  return map;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Largest config file read. 100,000 domains with rules take 4 MB and load in about 10 s; a file
 * of tens of MB is a wrong path (a log, a dump), and parsing it took minutes and gigabytes.
 */
export const MAX_CONFIG_BYTES = 16 * 1024 * 1024;

/**
 * Reads the YAML file (if any), applies RCPTGATE_* overrides, validates, freezes.
 * Throws ConfigError listing every problem, or RcptgateError(CONFIG_READ) when the file is unreadable.
 */
export function loadConfig(file: string | null | undefined, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  // `-e RCPTGATE_CONFIG="$FILE"` with $FILE unset: no file would mean the bundled example directory
  // (and hide the image's own config), whose domains are not the operator's, as an empty --config would.
  if (file == null && env.RCPTGATE_CONFIG === '') throw new RcptgateError(ErrorCodes.CONFIG_READ, 'RCPTGATE_CONFIG is set but empty: name the config file, or unset it for the built-in defaults');
  const path = file ?? env.RCPTGATE_CONFIG ?? null;
  let raw: Record<string, unknown> = {};
  const issues: ConfigIssue[] = [];
  if (path) {
    let text: string;
    try {
      text = readRegularFileSync(path, 'utf8', MAX_CONFIG_BYTES);
    } catch (err) {
      throw new RcptgateError(ErrorCodes.CONFIG_READ, `cannot read config file ${path}: ${(err as Error).message}`, { cause: err });
    }
    try {
      const parsed = parseYaml(text);
      if (parsed === null || parsed === undefined) raw = {};
      else if (typeof parsed !== 'object' || Array.isArray(parsed)) issues.push({ path: '', message: 'the config file must be a YAML mapping' });
      else raw = parsed as Record<string, unknown>;
    } catch (err) {
      const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
      issues.push({ path: '', message: `YAML syntax error${where}: ${(err as Error).message.split('\n')[0]}` });
      throw new ConfigError(issues);
    }
  }
  const origins = applyEnv(raw, env, issues);
  try {
    return { config: deepFreeze(validateConfig(raw, issues)), file: path };
  } catch (err) {
    throw err instanceof ConfigError ? withOrigins(err, origins) : err;
  }
}

/**
 * YAML text → plain value; a key written twice in one mapping is refused. The yaml package's own
 * check compares each key with every earlier one of its mapping: a `domains` map of 10,000
 * entries took seconds and 100,000 ten minutes, at start and at every SIGHUP (the reload reads
 * synchronously, so every front end stalled meanwhile). Here each mapping is checked in one pass.
 */
function parseYaml(text: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: false, lineCounter });
  if (doc.errors.length > 0) throw doc.errors[0];
  visit(doc, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        // Equal as yaml's own check has it: scalars by value, other keys (rare) by identity.
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        if (!seen.has(key)) {
          seen.add(key);
          continue;
        }
        const at = isScalar(pair.key) && pair.key.range ? pair.key.range[0] : 0;
        const err = new YAMLParseError([at, at + 1], 'DUPLICATE_KEY', `Map keys must be unique: ${JSON.stringify(String(key))} is written twice`);
        err.linePos = [lineCounter.linePos(at)];
        throw err;
      }
    },
  });
  return doc.toJS();
}

/** Secret-looking keys are replaced; file paths to secrets are not secrets. */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, /(password|token|secret)$/i.test(k) && v !== null ? '[redacted]' : redact(v)]),
    );
  }
  return value;
}

/** Reads a secret from a file or an environment variable (both trimmed: trimSecret). */
export function readSecret(file: string | null, envValue: string | undefined, what: string): string | null {
  if (file) {
    try {
      // The same trimming as resolveConfig: the password checked there is the one used to bind.
      return trimSecret(readRegularFileSync(file, 'utf8'));
    } catch (err) {
      throw new RcptgateError(ErrorCodes.CONFIG_READ, `cannot read ${what} file ${secretFileProblem(file, err)}`, { cause: err });
    }
  }
  return envSecret(envValue);
}
