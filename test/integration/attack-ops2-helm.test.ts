/**
 * Helm values that render but would hurt a running release: a percentage PodDisruptionBudget
 * that no eviction can satisfy, an answer file on the pod's small memory-backed /tmp, an answer
 * file on the snapshot's own path, extra volumes that clash with the chart's own (the API server
 * refuses the pod), and a liveness probe that restarts a pod still loading a large
 * snapshot and answer file (measured: 2,000,000 snapshot addresses and 1,000,000 saved answers
 * took 6.5 s from spawn to listening on an unthrottled, loaded 2-core machine; a CPU limit of a
 * quarter core makes that about 26 s, near the liveness probe's 30 s, and every restart starts
 * the load again). Uses the real helm (scripts/install-helm.sh).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { HELM_INSTALL_MS, helmTemplate, installHelm } from '../helpers/helm.js';

let helm = '';
const template = (args: string[]) => helmTemplate(helm, args);

before(async () => {
  helm = await installHelm();
}, { timeout: HELM_INSTALL_MS + 60_000 });

const LDAP_SYNC = ['--set', 'config.directory.kind=ldap', '--set', 'config.domains={example.com}', '--set', 'config.directory.ldap.urls={ldap://dc.example}', '--set', 'config.sync.enabled=true'];

describe('helm chart: values that render but hurt the running release', () => {
  const refused: Array<[string, string[], RegExp]> = [
    // Kubernetes rounds a percentage minAvailable up: 60 % of 2 pods is 2.
    ['a percentage PodDisruptionBudget that keeps every pod (100 %)', ['--set', 'replicaCount=2', '--set', 'podDisruptionBudget.minAvailable=100%'], /podDisruptionBudget\.minAvailable \(100%\) keeps 2 of 2 pods/],
    ['a percentage PodDisruptionBudget that rounds up to every pod (60 % of 2)', ['--set', 'replicaCount=2', '--set', 'podDisruptionBudget.minAvailable=60%'], /podDisruptionBudget\.minAvailable \(60%\) keeps 2 of 2 pods/],
    ['the same under an autoscaler at its minimum', ['--set', 'autoscaling.enabled=true', '--set', 'autoscaling.minReplicas=3', '--set', 'podDisruptionBudget.minAvailable=70%'], /keeps 3 of 3 pods/],
    ['a minAvailable that is neither a number nor a percentage (schema)', ['--set', 'replicaCount=2', '--set', 'podDisruptionBudget.minAvailable=half'], /podDisruptionBudget\/minAvailable/],
    ['an answer file path that names the data directory itself', ['--set', 'config.cache.persistPath=/var/lib/rcptgate/'], /config\.cache\.persistPath \(\/var\/lib\/rcptgate\/\) names a directory/],
    ['an answer file on the memory-backed 16Mi /tmp', ['--set', 'config.cache.persistPath=/tmp/answers.bin'], /config\.cache\.persistPath \(\/tmp\/answers\.bin\) is on \/tmp/],
    // What one reaches for to keep the snapshot on a claim: the API server refuses the duplicates.
    ['an extra volume named like the chart\'s data volume', ['--set', 'extraVolumes[0].name=data', '--set', 'extraVolumes[0].persistentVolumeClaim.claimName=snap'], /extraVolumes: the name data is the chart's own volume/],
    ['an extra mount on the snapshot directory', ['--set', 'extraVolumes[0].name=snap', '--set', 'extraVolumes[0].persistentVolumeClaim.claimName=snap', '--set', 'extraVolumeMounts[0].name=snap', '--set', 'extraVolumeMounts[0].mountPath=/var/lib/rcptgate/'], /extraVolumeMounts: \/var\/lib\/rcptgate is where the chart mounts its data volume/],
    ['an answer file on the snapshot path', [...LDAP_SYNC, '--set', 'config.cache.persistPath=/var/lib/rcptgate/snapshot.json'], /config\.cache\.persistPath is the snapshot file/],
  ];
  for (const [what, args, message] of refused) {
    it(`refuses ${what}, naming the key`, async () => {
      const r = await template(args);
      assert.equal(r.ok, false, `helm template accepted ${args.join(' ')}`);
      assert.match(r.output, message);
    });
  }

  it('accepts percentages that leave a pod to evict, and an answer file on the data volume', async () => {
    const fine = [
      ['--set', 'replicaCount=2', '--set', 'podDisruptionBudget.minAvailable=50%'],
      ['--set', 'replicaCount=5', '--set', 'podDisruptionBudget.minAvailable=60%'],
      ['--set', 'replicaCount=1', '--set', 'podDisruptionBudget.minAvailable=100%'],
      [...LDAP_SYNC, '--set', 'config.cache.persistPath=/var/lib/rcptgate/answers.bin'],
      ['--set', 'extraVolumes[0].name=ca', '--set', 'extraVolumes[0].configMap.name=ldap-ca', '--set', 'extraVolumeMounts[0].name=ca', '--set', 'extraVolumeMounts[0].mountPath=/etc/rcptgate/ca'],
    ];
    for (const args of fine) {
      const r = await template(args);
      assert.ok(r.ok, `${args.join(' ')}: ${r.output}`);
    }
  });

  it('gives the start a startup probe of its own, so liveness cannot restart a pod still loading its snapshot', async () => {
    const r = await template([]);
    assert.ok(r.ok, r.output);
    const deployment = parseAllDocuments(r.output)
      .map((d) => d.toJS() as { kind?: string; spec?: any })
      .find((o) => o?.kind === 'Deployment');
    const container = deployment!.spec.template.spec.containers[0];
    const startup = container.startupProbe;
    assert.ok(startup, 'no startupProbe: the liveness probe (about 30 s) runs from the first second');
    assert.deepEqual(startup.httpGet, { path: '/healthz', port: 'metrics' });
    const budget = startup.periodSeconds * startup.failureThreshold;
    assert.ok(budget >= 300, `the start may take ${budget} s only`);
    const live = container.livenessProbe;
    assert.ok(live.periodSeconds * live.failureThreshold <= 60, 'liveness still notices a hung process within a minute');
  });
});
