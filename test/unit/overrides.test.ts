import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, ErrorCodes, RcptgateError } from '../../src/errors.js';
import { NO_OVERRIDES, readAddressList } from '../../src/recipient/overrides.js';
import { validateConfig } from '../../src/config/load.js';
import { resolveConfig } from '../../src/config/resolve.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'rcptgate-overrides-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function list(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('address lists', () => {
  it('reads one address per line, normalized, skipping comments and blank lines', () => {
    const p = list('allow', '# allowed despite the directory\nAlice@Example.COM\n\n  bob@example.com.  # trailing comment\r\n<carol@bücher.example>\n');
    assert.deepEqual([...readAddressList(p)].sort(), ['alice@example.com', 'bob@example.com', 'carol@xn--bcher-kva.example']);
  });

  it('reads an empty file as an empty list', () => {
    assert.equal(readAddressList(list('empty', '')).size, 0);
  });

  it('refuses a bad line, naming the file and the line number', () => {
    const p = list('bad', 'alice@example.com\n# fine\nnot an address\n');
    assert.throws(
      () => readAddressList(p),
      (e: unknown) => e instanceof RcptgateError && e.code === ErrorCodes.CONFIG_INVALID && e.message.includes(p) && /line 3\b/.test(e.message),
    );
  });

  it('reports a missing file as a read error', () => {
    assert.throws(
      () => readAddressList(join(dir, 'missing')),
      (e: unknown) => e instanceof RcptgateError && e.code === ErrorCodes.CONFIG_READ,
    );
  });
});

describe('the override lists a config names', () => {
  it('loads both lists', () => {
    const { overrides: o } = resolveConfig(validateConfig({ overrides: { allowFile: list('a', 'x@example.com\n'), denyFile: list('d', 'y@example.com\n') } }), {});
    assert.deepEqual([...o.allow], ['x@example.com']);
    assert.deepEqual([...o.deny], ['y@example.com']);
  });

  it('gives empty lists without files', () => {
    const { overrides: o } = resolveConfig(validateConfig({}), {});
    assert.equal(o.allow.size, 0);
    assert.equal(o.deny.size, 0);
    assert.equal(NO_OVERRIDES.allow.size + NO_OVERRIDES.deny.size, 0);
  });

  it('reports a list it cannot use under its own key', () => {
    const config = validateConfig({ overrides: { allowFile: list('bad', 'not an address\n'), denyFile: join(dir, 'missing') } });
    assert.throws(() => resolveConfig(config, {}), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(err.issues.map((i) => i.path), ['overrides.allowFile', 'overrides.denyFile']);
      return true;
    });
  });
});
