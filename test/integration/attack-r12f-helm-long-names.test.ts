/**
 * Long release names. Helm takes release names of up to 53 characters and the chart cuts object
 * names at 63, but two names it derives grew past what the API server takes:
 * - the client label `<fullname>-client` (the NetworkPolicy's selector and the helm test pod):
 *   a label key's name part holds at most 63 characters, so with a full name over 56 (a release
 *   name over 47, such as `mail-relay-production-europe-west1-backup-mx-second`) the default
 *   install (NetworkPolicy on) was refused as a whole;
 * - with `persistence.enabled`, the StatefulSet: Kubernetes labels each of its pods
 *   `controller-revision-hash: <name>-<hash of up to 10 characters>`, a label value of at most 63
 *   characters, so a name over 52 renders and installs but no pod is ever created.
 * No API server runs here: its rules for label keys and values (IsQualifiedName, IsValidLabelValue)
 * are checked on every label and selector `helm template` renders. The real helm.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { CHART, HELM_INSTALL_MS, installHelm } from '../helpers/helm.js';

const exec = promisify(execFile);
let helm = '';

before(async () => {
  helm = await installHelm();
}, { timeout: HELM_INSTALL_MS + 60_000 });

type Doc = { kind: string; metadata: { name: string } } & Record<string, unknown>;

async function render(release: string, args: string[] = []): Promise<{ ok: boolean; docs: Doc[]; output: string }> {
  try {
    const { stdout } = await exec(helm, ['template', release, CHART, ...args], { maxBuffer: 32 << 20, timeout: 120_000 });
    const docs = parseAllDocuments(stdout).map((d) => d.toJS() as Doc).filter((d) => d !== null);
    return { ok: true, docs, output: stdout };
  } catch (err) {
    const e = err as { stderr?: string; code?: unknown };
    if (typeof e.code !== 'number') throw err;
    return { ok: false, docs: [], output: e.stderr ?? '' };
  }
}

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why the API server refuses `key: value` as a label, or null (apimachinery's validation). */
function labelProblem(key: string, value: unknown): string | null {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? null : key.slice(0, slash);
  const name = key.slice(slash + 1);
  if (prefix !== null && (prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return `key ${key}: bad prefix`;
  if (name.length > 63 || !NAME.test(name)) return `key ${key}: name part of ${name.length} characters (at most 63)`;
  const v = String(value);
  if (v.length > 63 || (v !== '' && !NAME.test(v))) return `value of ${key}: ${v.length} characters (at most 63)`;
  return null;
}

/** Every label map (`labels`, `matchLabels`) anywhere in the rendered objects, checked. */
function labelProblems(docs: Doc[]): string[] {
  const problems: string[] = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
    if (node === null || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if ((k === 'labels' || k === 'matchLabels') && v !== null && typeof v === 'object' && !Array.isArray(v)) {
        for (const [lk, lv] of Object.entries(v)) {
          const p = labelProblem(lk, lv);
          if (p) problems.push(`${where}.${k}: ${p}`);
        }
      } else walk(v, `${where}.${k}`);
    }
  };
  for (const d of docs) walk(d, `${d.kind}/${d.metadata.name}`);
  // The labels Kubernetes itself puts on a StatefulSet's pods.
  for (const s of docs.filter((d) => d.kind === 'StatefulSet')) {
    for (const [k, v] of [['controller-revision-hash', `${s.metadata.name}-7d9f8b6c5d`], ['statefulset.kubernetes.io/pod-name', `${s.metadata.name}-10`]]) {
      const p = labelProblem(k!, v);
      if (p) problems.push(`StatefulSet/${s.metadata.name} pods: ${p}`);
    }
  }
  return problems;
}

/** Helm's longest release name (53 characters), as a real one might read. */
const LONG_RELEASE = 'mail-relay-production-europe-west1-backup-mx-secondar';

describe('helm chart: long release and object names', () => {
  it('the longest release name helm takes renders only labels the API server accepts', async () => {
    assert.equal(LONG_RELEASE.length, 53);
    const r = await render(LONG_RELEASE);
    assert.ok(r.ok, r.output);
    assert.deepEqual(labelProblems(r.docs), []);
  });

  it('a fullnameOverride of 63 characters, and a nameOverride of 63, the same', async () => {
    for (const key of ['fullnameOverride', 'nameOverride']) {
      const r = await render('mx', ['--set', `${key}=${'r'.repeat(62)}x`]);
      assert.ok(r.ok, r.output);
      assert.deepEqual(labelProblems(r.docs), [], key);
    }
  });

  it('the NetworkPolicy admits the label the helm test pod carries', async () => {
    const r = await render(LONG_RELEASE);
    const policy = r.docs.find((d) => d.kind === 'NetworkPolicy') as unknown as { spec: { ingress: Array<{ from: Array<{ podSelector?: { matchLabels: Record<string, string> } }> }> } };
    const admitted = policy.spec.ingress[0]!.from[0]!.podSelector!.matchLabels;
    const pod = r.docs.find((d) => d.kind === 'Pod') as unknown as { metadata: { labels: Record<string, string> } };
    const [key] = Object.keys(admitted);
    assert.equal(pod.metadata.labels[key!], 'true');
    assert.match(key!, /-client$/);
  });

  it('persistence with a full name too long for a StatefulSet is refused at render, naming fullnameOverride', async () => {
    const r = await render(LONG_RELEASE, ['--set', 'persistence.enabled=true']);
    assert.equal(r.ok, false, 'rendered a StatefulSet whose pods Kubernetes cannot label');
    assert.match(r.output, /persistence\.enabled.*52 characters.*fullnameOverride/s);
  });

  it('persistence with a full name of 52 characters renders a StatefulSet whose pods can be labelled', async () => {
    const r = await render('mx', ['--set', 'persistence.enabled=true', '--set', `fullnameOverride=${'s'.repeat(52)}`]);
    assert.ok(r.ok, r.output);
    assert.equal(r.docs.filter((d) => d.kind === 'StatefulSet').length, 1);
    assert.deepEqual(labelProblems(r.docs), []);
  });
});
