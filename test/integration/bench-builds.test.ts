/**
 * The old build of `npm run bench -- --only regress` (bench/lib/builds.ts), for real: the 0.1
 * commit materialised from git into a temporary directory, started as its own CLI with the
 * config its own `config check` accepts (it has no metrics listener), answering from a real
 * slapd; its cache flush works; the directory is gone after dispose. And a commit that is not
 * in the repository fails with its name.
 */
import assert from 'node:assert/strict';
import { existsSync, readlinkSync, realpathSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { materialiseBuild, startBuild, type Build } from '../../bench/lib/builds.js';
import { ROOT } from '../../bench/lib/procs.js';
import { REGRESS_COMMIT } from '../../bench/scenarios/regress.js';
import { startSlapd, type Slapd } from '../helpers/slapd.js';
import { SocketmapClient } from '../helpers/socketmap-client.js';

describe('old build from git', () => {
  let slapd: Slapd;
  let dir: string;
  let build: Build;
  const logged: string[] = [];

  before(async () => {
    slapd = await startSlapd();
    dir = await mkdtemp(path.join(os.tmpdir(), 'rcptgate-bench-builds-'));
    build = materialiseBuild(REGRESS_COMMIT, (line) => logged.push(line));
  });
  after(async () => {
    build?.dispose();
    await slapd?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is the commit\'s tree under the temporary directory, with the working tree\'s node_modules when the lockfiles match', async () => {
    assert.ok(build.root.startsWith(os.tmpdir()), build.root);
    assert.ok(existsSync(path.join(build.root, 'src/main.ts')));
    assert.ok(!existsSync(path.join(build.root, 'build.tar')));
    const same = (await readFile(path.join(build.root, 'package-lock.json'), 'utf8')) === (await readFile(path.join(ROOT, 'package-lock.json'), 'utf8'));
    if (same) assert.equal(readlinkSync(path.join(build.root, 'node_modules')), realpathSync(path.join(ROOT, 'node_modules')));
    else assert.ok(existsSync(path.join(build.root, 'node_modules/tsx')), 'npm ci installed tsx');
  });

  it('runs as its own CLI against slapd, answers socketmap lookups and flushes its cache', async () => {
    const rg = await startBuild(build, { dir, slapd });
    try {
      const config = await readFile(path.join(dir, 'regress-old.yaml'), 'utf8');
      assert.doesNotMatch(config, /metrics/, 'the 0.1 schema has no listen.metrics');
      const client = await SocketmapClient.connect(rg.socketmapPort);
      try {
        assert.match(await client.query('recipients', 'user1@example.com'), /^OK /);
        assert.match(await client.query('recipients', 'nobody-here@example.com'), /^NOTFOUND/);
      } finally {
        client.close();
      }
      await rg.flush();
    } finally {
      await rg.stop();
    }
  });

  it('dispose removes the directory', () => {
    const other = materialiseBuild(REGRESS_COMMIT, () => undefined);
    assert.ok(existsSync(other.root));
    other.dispose();
    assert.ok(!existsSync(other.root));
  });

  it('a commit the repository does not have fails with its name', () => {
    assert.throws(() => materialiseBuild('0123456789abcdef0123456789abcdef01234567', () => undefined), /commit 0123456789abcdef0123456789abcdef01234567 is not in this repository/);
  });
});
