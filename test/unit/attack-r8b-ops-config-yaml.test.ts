/**
 * YAML a careless operator writes: a large per-domain map (a hosting provider's MX), keys written
 * twice, an alias bomb.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, MAX_CONFIG_BYTES } from '../../src/config/load.js';
import { RcptgateError } from '../../src/errors.js';
import { configIssuesOf, scratchFiles } from '../helpers/config-scratch.js';

const scratch = scratchFiles('rcptgate-r8b-yaml-');
const write = scratch.write;
const issuesOf = configIssuesOf;

describe('a large domain map', () => {
  it('loads 30,000 domains with their rules in seconds, not minutes', () => {
    // The duplicate-key check compared each key with every earlier one: 20,000 took 25 s, 100,000
    // ten minutes, at start and at every SIGHUP with every front end stalled meanwhile.
    let text = 'domains:\n';
    for (let i = 0; i < 30_000; i++) text += `  d${i}.example.com: { catchAll: false, alwaysValid: [postmaster] }\n`;
    const file = write('many-domains.yaml', text);
    const t0 = performance.now();
    const { config } = loadConfig(file, {});
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(Object.keys(config.domains).length, 30_000);
    assert.ok(seconds < 10, `30,000 domains took ${seconds.toFixed(1)} s to load`);
  });

  it('still refuses a key written twice, naming the key and its line, at any depth and in flow maps', () => {
    const cases: Array<[string, string, number]> = [
      ['log:\n  level: info\nlog:\n  level: debug\n', 'log', 3],
      ['domains:\n  a.example: {}\n  b.example: { catchAll: true }\n  a.example: { mode: shadow }\n', 'a.example', 4],
      ['cache: { positiveTtl: 1h, positiveTtl: 5m }\n', 'positiveTtl', 1],
    ];
    for (const [text, key, line] of cases) {
      const issues = issuesOf(() => loadConfig(write('dup.yaml', text), {}));
      assert.equal(issues.length, 1, JSON.stringify(issues));
      assert.match(issues[0]!.message, new RegExp(`^YAML syntax error at line ${line}: .*unique.*${key.replace('.', '\\.')}`), text);
    }
  });

  it('keeps the YAML limits: an alias bomb is refused', () => {
    let text = 'a: &a [x, x, x, x, x, x, x, x, x]\n';
    for (const [name, prev] of [['b', 'a'], ['c', 'b'], ['d', 'c'], ['e', 'd'], ['f', 'e']]) {
      text += `${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]\n`;
    }
    const issues = issuesOf(() => loadConfig(write('bomb.yaml', text), {}));
    assert.match(issues[0]!.message, /YAML syntax error.*alias/i);
  });

  it('refuses a config file over 16 MB at once, naming its size: a wrong path, not a config', () => {
    // An 83 MB file took 110 s and about 4 GB to parse, at start or at a SIGHUP.
    const path = write('huge.yaml', `# ${'x'.repeat(MAX_CONFIG_BYTES)}\ndomains: [example.com]\n`);
    const started = Date.now();
    assert.throws(() => loadConfig(path, {}), (err: unknown) => err instanceof RcptgateError && /cannot read config file .*: \d+ bytes, more than the 16777216 allowed: is it the right file\?/.test(err.message));
    assert.ok(Date.now() - started < 1_000, 'refused without parsing');
  });
});
