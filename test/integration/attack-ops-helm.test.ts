/**
 * Helm values the schema's types allow but the pod could not run with, refused at
 * `helm template` / `helm install` time with the key named, instead of a crash loop, a pod killed
 * mid-drain, or a node drain that never ends. Uses the real helm (scripts/install-helm.sh).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { HELM_INSTALL_MS, helmTemplate, installHelm } from '../helpers/helm.js';

let helm = '';
const template = (args: string[]) => helmTemplate(helm, args);

before(async () => {
  helm = await installHelm();
}, { timeout: HELM_INSTALL_MS + 60_000 });

describe('helm chart: values that render but could not run', () => {
  const refused: Array<[string, string[], RegExp]> = [
    ['a drain longer than the grace period allows', ['--set', 'config.server.drainTimeout=60s'], /terminationGracePeriodSeconds \(30\) must exceed preStopSleepSeconds \(5\) plus config\.server\.drainTimeout \(60s\)/],
    ['a grace period that the preStop sleep alone uses up', ['--set', 'terminationGracePeriodSeconds=12', '--set', 'preStopSleepSeconds=5'], /terminationGracePeriodSeconds \(12\)/],
    ['two enabled listeners on one container port', ['--set', 'containerPorts.http=9465'], /containerPorts\.http and containerPorts\.socketmap are both 9465/],
    ['a timer duration over 24d', ['--set', 'config.directory.ldap.timeout=25d'], /config\.directory\.ldap\.timeout \(25d\) is longer than 24d/],
    ['a zero lookup timeout', ['--set', 'config.directory.ldap.timeout=0s'], /config\.directory\.ldap\.timeout must be more than 0/],
    ['a zero sync interval', ['--set', 'config.sync.interval=0m'], /config\.sync\.interval must be more than 0/],
    ['a failback that would reconnect in a loop', ['--set', 'config.directory.ldap.failbackAfter=500ms'], /config\.directory\.ldap\.failbackAfter \(500ms\) must be 0s \(never\) or at least 1s/],
    ['incremental syncs back to back', ['--set', 'config.sync.incrementalInterval=500ms'], /config\.sync\.incrementalInterval \(500ms\) must be at least 1s/],
    ['answer file saves back to back', ['--set', 'config.cache.persistInterval=1ms'], /config\.cache\.persistInterval \(1ms\) must be at least 1s/],
    ['an answer file on the read-only root file system', ['--set', 'config.cache.persistPath=/data/answers.bin'], /config\.cache\.persistPath \(\/data\/answers\.bin\) is on the read-only root file system/],
    ['snapshot sync without LDAP', ['--set', 'config.sync.enabled=true'], /config\.sync\.enabled needs config\.directory\.kind ldap/],
    ['a snapshot that expires before the next full sync', ['--set', 'config.directory.kind=ldap', '--set', 'config.domains={example.com}', '--set', 'config.directory.ldap.urls={ldap://dc.example}', '--set', 'config.sync.enabled=true', '--set', 'config.sync.interval=1d'], /config\.sync\.maxAge \(24h\) must be longer than config\.sync\.interval \(1d\)/],
    ['an extraEnv variable that moves a listener away from its container port and Service', ['--set', 'extraEnv[0].name=RCPTGATE_LISTEN_HTTP', '--set', 'extraEnv[0].value=0.0.0.0:9000'], /extraEnv RCPTGATE_LISTEN_HTTP sets what the chart owns/],
    ['an extraEnv variable that moves the snapshot off the data volume', ['--set', 'extraEnv[0].name=RCPTGATE_SYNC_SNAPSHOT_PATH', '--set', 'extraEnv[0].value=/snap'], /extraEnv RCPTGATE_SYNC_SNAPSHOT_PATH/],
    ['a PodDisruptionBudget no eviction can satisfy', ['--set', 'replicaCount=2', '--set', 'podDisruptionBudget.minAvailable=2'], /podDisruptionBudget\.minAvailable \(2\) must be below the replica count \(2\)/],
    ['a loopback listenHost (probes and the Service reach the pod IP)', ['--set', 'listenHost=127.0.0.1'], /listenHost 127\.0\.0\.1 is loopback/],
    ['an autoscaler whose minimum is above its maximum', ['--set', 'autoscaling.enabled=true', '--set', 'autoscaling.minReplicas=8'], /autoscaling\.minReplicas \(8\) is above autoscaling\.maxReplicas \(6\)/],
    ['a loopback listenHost written as localhost', ['--set', 'listenHost=localhost'], /listenHost localhost is loopback/],
    ['an LDAP URL with a port out of range (schema)', ['--set', 'config.directory.ldap.urls={ldap://dc.example:99999}'], /directory\/ldap\/urls\/0/],
    ['a whole address in alwaysValid (schema)', ['--set', 'config.alwaysValid={abuse@example.com}'], /alwaysValid\/0/],
  ];
  for (const [what, args, message] of refused) {
    it(`refuses ${what}, naming the key`, async () => {
      const r = await template(args);
      assert.equal(r.ok, false, `helm template accepted ${args.join(' ')}`);
      assert.match(r.output, message);
    });
  }

  it('accepts the neighbouring values that do work', async () => {
    const fine = [
      ['--set', 'config.server.drainTimeout=20s'],
      ['--set', 'containerPorts.milter=9465', '--set', 'listeners.socketmap.enabled=false'],
      ['--set', 'config.directory.ldap.timeout=24d', '--set', 'config.server.idleTimeout=0s'],
      ['--set', 'config.cache.persistPath=/var/lib/rcptgate/answers.bin'],
      ['--set', 'replicaCount=3', '--set', 'podDisruptionBudget.minAvailable=2'],
      ['--set', 'listenHost=[::]'],
      ['--set', 'extraEnv[0].name=RCPTGATE_LOG_LEVEL', '--set', 'extraEnv[0].value=debug', '--set', 'extraEnv[1].name=RCPTGATE_LDAP_BIND_PASSWORD', '--set', 'extraEnv[1].valueFrom.secretKeyRef.name=ldap', '--set', 'extraEnv[1].valueFrom.secretKeyRef.key=pw'],
      ['--set', 'replicaCount=2', '--set', 'podDisruptionBudget.minAvailable=50%'],
      ['--set', 'config.directory.kind=ldap', '--set', 'config.domains={example.com}', '--set', 'config.directory.ldap.urls={ldap://[::1]:389,ldaps://dc.example:636/}'],
    ];
    for (const args of fine) {
      const r = await template(args);
      assert.ok(r.ok, `${args.join(' ')}: ${r.output}`);
    }
  });
});

describe('helm chart: schema bounds shared with rcptgate', () => {
  it('refuses scope base, which rcptgate refuses (it would find no recipient)', async () => {
    const r = await template(['--set', 'config.directory.ldap.scope=base']);
    assert.equal(r.ok, false);
    assert.match(r.output, /ldap\/scope/);
  });

  it('refuses a cache larger than rcptgate accepts', async () => {
    const r = await template(['--set', 'config.cache.maxEntries=1000000000']);
    assert.equal(r.ok, false);
    assert.match(r.output, /cache\/maxEntries/);
  });
});
