/**
 * Override lists written before "#" could stand in a local part: a comment straight after the
 * address (`bob@example.com#moved to carol@example.com`) was read as part of the address once a
 * "#" followed by an "@" was kept, so the line was refused and the service would not start (or a
 * reload was refused). A "#" after the address's "@" starts a comment; `ops#oncall@` stays an
 * address. Real files.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readAddressList } from '../../src/recipient/overrides.js';

describe('override list comments', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rcptgate-r12m-overrides-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const read = (text: string): string[] => {
    const file = join(dir, 'list.txt');
    writeFileSync(file, text);
    return [...readAddressList(file)].sort();
  };

  it('a comment right after an address, naming another address, is a comment', () => {
    assert.deepEqual(read('bob@example.com#moved to carol@example.com\ndan@example.com#see:erin@example.com\n'), ['bob@example.com', 'dan@example.com']);
  });

  it('"#" in a local part stays part of the address; comments elsewhere still work', () => {
    assert.deepEqual(read('# role addresses\nops#oncall@example.com\nhelp@example.com # the desk\n'), ['help@example.com', 'ops#oncall@example.com']);
  });
});
