import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { ConfigError, type ConfigIssue } from '../../src/errors.js';

/** A temporary directory for one test file (made before its tests, removed after), and a writer into it. */
export function scratchFiles(prefix: string): { dir: () => string; write(name: string, text: string): string } {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), prefix));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir: () => dir,
    write(name, text) {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
  };
}

/** The issues of the ConfigError `run` throws; fails the test when it accepts. */
export function configIssuesOf(run: () => unknown): ConfigIssue[] {
  try {
    run();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('accepted');
}
