/**
 * The chart's `persistence` option, rendered by the real helm binary and checked against
 * Kubernetes' own schemas (kubernetes-models): a StatefulSet whose replicas each keep the
 * snapshot and the answer file on a claim of their own, so a replaced or rescheduled pod starts
 * with them instead of deferring every recipient while the directory is down. No cluster runs
 * here; the rendered objects are what a cluster would be given.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { CHART, HELM_INSTALL_MS, helmTemplate, installHelm } from '../helpers/helm.js';

type Obj = { kind: string; metadata: { name: string }; spec: any; data?: Record<string, string> };

const ALL_ON = join(CHART, 'ci/all-on-values.yaml');
const ANSWERS = '/var/lib/rcptgate/answers.bin';
let helm = '';

async function render(args: string[]): Promise<Obj[]> {
  const res = await helmTemplate(helm, args);
  assert.ok(res.ok, `helm template ${args.join(' ')} failed:\n${res.output}`);
  return parseAllDocuments(res.output).map((d) => d.toJS() as Obj).filter(Boolean);
}

function only(objs: Obj[], kind: string): Obj {
  const found = objs.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected exactly one ${kind}, got ${found.length}`);
  return found[0]!;
}

/** The volume a path in the rcptgate container lies on: the pod's own, or a claim template's. */
function volumeOf(workload: Obj, path: string): { pod?: any; claim?: any } {
  const pod = workload.spec.template.spec;
  const container = pod.containers.find((c: any) => c.name === 'rcptgate');
  const mount = [...container.volumeMounts]
    .sort((a: any, b: any) => b.mountPath.length - a.mountPath.length)
    .find((m: any) => path.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `no volume mount holds ${path}`);
  assert.notEqual(mount.readOnly, true, `${path} must be writable`);
  return {
    pod: (pod.volumes ?? []).find((v: any) => v.name === mount.name),
    claim: (workload.spec.volumeClaimTemplates ?? []).find((c: any) => c.metadata.name === mount.name),
  };
}

function config(objs: Obj[]): any {
  const map = objs.find((o) => o.kind === 'ConfigMap' && o.data?.['rcptgate.yaml']);
  assert.ok(map, 'the config ConfigMap is rendered');
  return parseYaml(map.data!['rcptgate.yaml']!);
}

before(async () => {
  helm = await installHelm();
}, { timeout: HELM_INSTALL_MS + 60_000 });

describe('helm chart: persistence', () => {
  const persistent = ['-f', ALL_ON, '--set', 'persistence.enabled=true', '--set', `config.cache.persistPath=${ANSWERS}`];

  it('keeps the snapshot and the answer file on a claim per replica of a valid StatefulSet', async () => {
    const objs = await render([...persistent, '--set', 'persistence.size=5Gi', '--set', 'persistence.storageClassName=fast-ssd']);
    assert.equal(objs.filter((o) => o.kind === 'Deployment').length, 0, 'no Deployment beside the StatefulSet');
    const sts = only(objs, 'StatefulSet');
    assert.doesNotThrow(() => new StatefulSet(sts as any).validate(), 'the StatefulSet is valid');
    const cfg = config(objs);
    for (const path of [cfg.sync.snapshotPath as string, cfg.cache.persistPath as string]) {
      const { pod, claim } = volumeOf(sts, path);
      assert.equal(pod, undefined, `${path}: no pod volume shadows the claim`);
      assert.ok(claim, `${path} lies on a claim template`);
      assert.deepEqual(claim.spec.accessModes, ['ReadWriteOnce']);
      assert.equal(claim.spec.resources.requests.storage, '5Gi');
      assert.equal(claim.spec.storageClassName, 'fast-ssd');
    }
    assert.ok(volumeOf(sts, '/tmp/x').pod?.emptyDir, '/tmp stays a memory-backed emptyDir');
    assert.equal(sts.spec.podManagementPolicy, 'Parallel', 'replicas start together, not one by one');
    assert.equal(sts.spec.serviceName, only(objs, 'Service').metadata.name);
    assert.deepEqual(sts.spec.selector.matchLabels, Object.fromEntries(
      Object.entries(sts.spec.template.metadata.labels).filter(([k]) => k in sts.spec.selector.matchLabels)));
    assert.equal(sts.spec.strategy, undefined, 'a Deployment-only field would be refused by the API server');
  });

  it('leaves the storage class to the cluster when none is given', async () => {
    const sts = only(await render(persistent), 'StatefulSet');
    const claim = sts.spec.volumeClaimTemplates[0];
    assert.equal('storageClassName' in claim.spec, false, 'an empty class would ask for no class at all');
    assert.equal(claim.spec.resources.requests.storage, '1Gi');
  });

  it('points the autoscaler at the StatefulSet', async () => {
    const objs = await render(persistent);
    const hpa = only(objs, 'HorizontalPodAutoscaler');
    assert.doesNotThrow(() => new HorizontalPodAutoscaler(hpa as any).validate());
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: only(objs, 'StatefulSet').metadata.name });
  });

  it('stays a Deployment with the data on an emptyDir by default', async () => {
    const objs = await render(['-f', ALL_ON]);
    assert.equal(objs.filter((o) => o.kind === 'StatefulSet').length, 0);
    const deployment = only(objs, 'Deployment');
    assert.doesNotThrow(() => new Deployment(deployment as any).validate());
    assert.ok(volumeOf(deployment, config(objs).sync.snapshotPath).pod?.emptyDir);
    assert.equal(only(objs, 'HorizontalPodAutoscaler').spec.scaleTargetRef.kind, 'Deployment');
  });

  it('refuses a size or access mode Kubernetes would not take, naming the key', async () => {
    for (const [set, key] of [['persistence.size=lots', /size/], ['persistence.accessModes={ReadOnlyMany}', /accessModes/]] as const) {
      const res = await helmTemplate(helm, ['--set', 'persistence.enabled=true', '--set', set]);
      assert.equal(res.ok, false, `${set} was accepted`);
      assert.match(res.output, /persistence/);
      assert.match(res.output, key);
    }
  });
});
