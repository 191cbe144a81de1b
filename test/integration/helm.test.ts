/**
 * The Helm chart and the container image files, checked with the real helm binary
 * (scripts/install-helm.sh), Kubernetes' own schemas (kubernetes-models) and the real
 * `rcptgate config check` / `rcptgate serve`.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigMap, Pod, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PrometheusRule, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { validateConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';
import { ms } from '../../src/config/duration.js';
import { createCertificateAuthority } from '../helpers/slapd.js';

const exec = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHART = join(ROOT, 'helm/rcptgate');
const ALL_ON = join(CHART, 'ci/all-on-values.yaml');
const FIXTURES = join(ROOT, 'test/fixtures/helm');

// ---------------------------------------------------------------- helpers

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
} & Record<string, any>;

/** apiVersion/kind → the maintained model that validates it against the Kubernetes OpenAPI schema. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/Pod': Pod,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'monitoring.coreos.com/v1/PrometheusRule': PrometheusRule,
};

let helm = '';

async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}) {
  try {
    const { stdout, stderr } = await exec(cmd, args, {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? process.env,
      maxBuffer: 32 << 20,
      timeout: opts.timeoutMs ?? 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** `helm template` → parsed objects; throws with helm's message when rendering fails. */
async function render(args: string[] = [], chart = CHART): Promise<K8sObject[]> {
  const res = await run(helm, ['template', 'mx', chart, '--namespace', 'mail', ...args]);
  if (res.code !== 0) throw new Error(`helm template failed: ${res.stderr}`);
  return parseAllDocuments(res.stdout)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
      return d.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

async function renderFails(args: string[]): Promise<string> {
  const res = await run(helm, ['template', 'mx', CHART, ...args]);
  assert.notEqual(res.code, 0, 'helm template should have failed');
  return res.stderr;
}

function one(objs: K8sObject[], kind: string): K8sObject {
  // The optional Grafana dashboard is a second ConfigMap; "the" ConfigMap is rcptgate's config.
  const found = objs.filter((o) => o.kind === kind && !(kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard')));
  assert.equal(found.length, 1, `expected exactly one ${kind}, got ${found.length}`);
  return found[0]!;
}

function kinds(objs: K8sObject[]): string[] {
  return objs.map((o) => o.kind).sort();
}

/** The rcptgate Deployment's pod spec and its rcptgate container. */
function podOf(objs: K8sObject[]) {
  const pod = one(objs, 'Deployment').spec.template.spec;
  const container = pod.containers.find((c: any) => c.name === 'rcptgate');
  assert.ok(container, 'the Deployment has a container named rcptgate');
  return { pod, container };
}

function configText(objs: K8sObject[]): string {
  const text = one(objs, 'ConfigMap').data?.['rcptgate.yaml'];
  assert.equal(typeof text, 'string', 'the ConfigMap holds rcptgate.yaml');
  return text as string;
}

function configOf(objs: K8sObject[]): any {
  return parseYaml(configText(objs));
}

function portOf(hostPort: string): number {
  return Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
}

/** The file a pod path resolves to: which volume mount holds it, and the path inside that volume. */
function mountFor(container: any, path: string): { mount: any; rest: string } {
  const mounts = [...(container.volumeMounts ?? [])].sort((a, b) => b.mountPath.length - a.mountPath.length);
  const mount = mounts.find((m) => path.startsWith(m.mountPath.replace(/\/$/, '') + '/'));
  assert.ok(mount, `no volume mount holds ${path}`);
  return { mount, rest: posix.relative(mount.mountPath, path) };
}

/** How to run the real CLI: the built dist/main.js (npm test builds it first), else the sources. */
function rcptgateArgv(): string[] {
  const dist = join(ROOT, 'dist/main.js');
  if (existsSync(dist)) return [dist];
  const src = join(ROOT, 'src/main.ts');
  assert.ok(existsSync(src), 'neither dist/main.js nor src/main.ts exists: the rcptgate CLI is needed');
  return ['--import', 'tsx', src];
}

/**
 * `config check` reads every file the config names (secrets, CA, lists), as `serve` would. The
 * rendered config names the pod's mount points; each gets a stand-in file (or, for the data
 * volume, a directory) under `dir`.
 */
async function configCheck(text: string, dir: string, name: string) {
  const file = join(dir, name);
  const mounted = [...new Set(text.match(/\/etc\/rcptgate\/[^\s"']+/g) ?? [])];
  for (const path of mounted) {
    const local = join(dir, 'mounts', path);
    await mkdir(dirname(local), { recursive: true });
    // A CA bundle must hold a certificate that parses (config check reads it): a real one, made here.
    const content = path.endsWith('.txt') ? 'someone@example.com\n' : /\.(crt|pem)$/.test(path) ? await standInCa(dir) : 'stand-in-secret\n';
    await writeFile(local, content);
    text = text.split(path).join(local);
  }
  // Files rcptgate writes (snapshot, answers) lie on the data volume: config check wants its directory.
  const data = join(dir, 'mounts', 'var/lib/rcptgate');
  await mkdir(data, { recursive: true });
  text = text.split('/var/lib/rcptgate/').join(`${data}/`);
  await writeFile(file, text);
  // No RCPTGATE_* from the test environment may leak into the check.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
  return run(process.execPath, [...rcptgateArgv(), 'config', 'check', '--config', file], { env });
}

async function standInCa(dir: string): Promise<string> {
  const { caFile } = await createCertificateAuthority(await mkdtemp(join(dir, 'ca-')));
  return readFile(caFile, 'utf8');
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolvePort(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Dotted paths of the object properties a JSON schema declares (stops at leaves, arrays and maps). */
function schemaPaths(schema: any, defs: any = schema.definitions ?? {}, prefix = ''): string[] {
  const node = schema.$ref ? defs[schema.$ref.replace('#/definitions/', '')] : schema;
  if (!node?.properties) return [];
  return Object.entries(node.properties).flatMap(([key, child]) => {
    const path = prefix ? `${prefix}.${key}` : key;
    return [path, ...schemaPaths(child, defs, path)];
  });
}

// ---------------------------------------------------------------- setup

let tmp = '';
let defaults: K8sObject[] = [];
let allOn: K8sObject[] = [];

// A first build of helm with Go takes minutes; later runs find the binary at once.
const HELM_BUILD_MS = 20 * 60_000;

before(async () => {
  const res = await run('bash', [join(ROOT, 'scripts/install-helm.sh')], { timeoutMs: HELM_BUILD_MS });
  assert.equal(res.code, 0, `scripts/install-helm.sh failed (helm is required): ${res.stderr}`);
  helm = res.stdout.trim().split('\n').pop() ?? '';
  assert.ok(helm && existsSync(helm), `install-helm.sh printed no usable helm path: ${res.stdout}`);
  tmp = await mkdtemp(join(tmpdir(), 'rcptgate-helm-'));
  defaults = await render();
  allOn = await render(['-f', ALL_ON]);
}, { timeout: HELM_BUILD_MS + 60_000 });

after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------- tests

describe('helm chart: lint and schemas', () => {
  it('passes helm lint --strict with the default values and with every optional object on', async () => {
    for (const args of [[], ['-f', ALL_ON]]) {
      const res = await run(helm, ['lint', '--strict', CHART, ...args]);
      assert.equal(res.code, 0, `helm lint ${args.join(' ')} failed:\n${res.stdout}${res.stderr}`);
      assert.doesNotMatch(res.stdout + res.stderr, /\[(WARNING|ERROR)\]|coalesce\.go/, 'lint reports no warning');
    }
  });

  it('renders only objects that are valid against the Kubernetes schemas', () => {
    for (const objs of [defaults, allOn]) {
      for (const obj of objs) {
        const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
        assert.ok(Model, `no Kubernetes schema known for ${obj.apiVersion} ${obj.kind}`);
        assert.doesNotThrow(() => new Model(obj).validate(), `${obj.kind} ${obj.metadata.name} is invalid`);
      }
    }
  });

  it('renders the core objects by default and every optional object with ci/all-on-values.yaml', () => {
    assert.deepEqual(kinds(defaults), ['ConfigMap', 'Deployment', 'NetworkPolicy', 'Pod', 'Service', 'ServiceAccount']);
    assert.deepEqual(kinds(allOn), [
      'ConfigMap', 'ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'NetworkPolicy', 'Pod', 'PodDisruptionBudget',
      'PrometheusRule', 'Secret', 'Service', 'ServiceAccount', 'ServiceMonitor',
    ]);
  });

  const badValues: Array<[string, RegExp]> = [
    ['password-in-config-values.yaml', /bindPassword/],
    ['listen-in-config-values.yaml', /listen/],
    ['wrong-types-values.yaml', /replicaCount[\s\S]*positiveTtl|positiveTtl[\s\S]*replicaCount/],
    ['bad-enum-values.yaml', /onDirectoryError/],
    ['port-out-of-range-values.yaml', /socketmap/],
    ['typo-top-level-values.yaml', /replicaCuont/],
  ];
  for (const [file, mentions] of badValues) {
    it(`fails helm lint for values that violate the schema (${file})`, async () => {
      const res = await run(helm, ['lint', '--strict', CHART, '-f', join(FIXTURES, file)]);
      assert.notEqual(res.code, 0, `helm lint accepted ${file}`);
      assert.match(res.stdout + res.stderr, mentions, 'the error names the offending key');
    });
  }

  it('declares in values.schema.json exactly the rcptgate config keys the chart does not own', async () => {
    const chartSchema = JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8'));
    const chartPaths = schemaPaths(chartSchema.properties.config, chartSchema.definitions).sort();
    const owned = /^(listen|admin|overrides)(\.|$)|^sync\.snapshotPath$|^directory\.ldap\.bindPasswordFile$|^http\.lookupTokenFile$/;
    const rcptgatePaths = schemaPaths(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }))
      .filter((p) => !owned.test(p))
      .sort();
    assert.deepEqual(chartPaths, rcptgatePaths);
  });

  it('documents every key of values.yaml with a "# --" comment', async () => {
    const lines = (await readFile(join(CHART, 'values.yaml'), 'utf8')).split('\n');
    const undocumented: string[] = [];
    lines.forEach((line, i) => {
      const m = /^(\s*)([\w./-]+):/.exec(line);
      if (!m) return;
      // Walk up the comment block directly above the key, at the key's indentation.
      let j = i - 1;
      let documented = false;
      while (j >= 0 && lines[j]!.startsWith(`${m[1]}#`)) {
        if (lines[j]!.startsWith(`${m[1]}# --`)) documented = true;
        j--;
      }
      if (!documented) undocumented.push(`${i + 1}: ${line.trim()}`);
    });
    assert.deepEqual(undocumented, []);
  });

  it('uses the package.json version as the chart appVersion', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8'));
    const chart = parseYaml(await readFile(join(CHART, 'Chart.yaml'), 'utf8'));
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.appVersion, pkg.version);
    assert.equal(podOf(defaults).container.image, `rcptgate:${pkg.version}`);
  });
});

describe('helm chart: ports, probes and security', () => {
  it('gives the container exactly the ports the rendered rcptgate config listens on', () => {
    for (const objs of [defaults, allOn]) {
      const listen = configOf(objs).listen as Record<string, string | null>;
      const fromConfig = Object.fromEntries(Object.entries(listen).filter(([, v]) => v !== null).map(([k, v]) => [k, portOf(v!)]));
      const fromPod = Object.fromEntries(podOf(objs).container.ports.map((p: any) => [p.name, p.containerPort]));
      assert.deepEqual(fromPod, fromConfig);
      assert.deepEqual(Object.keys(fromPod).sort(), ['http', 'metrics', 'milter', 'policy', 'socketmap']);
    }
  });

  it('exposes every enabled port on the Service, each targeting the container port of the same name', () => {
    const svc = one(defaults, 'Service');
    const names = podOf(defaults).container.ports.map((p: any) => p.name).sort();
    assert.deepEqual(svc.spec.ports.map((p: any) => p.name).sort(), names);
    for (const p of svc.spec.ports) assert.equal(p.targetPort, p.name);
    assert.deepEqual(svc.spec.selector, one(defaults, 'Deployment').spec.selector.matchLabels);
  });

  it('keeps config, container and Service in step when ports change or a listener is disabled', async () => {
    const objs = await render([
      '--set', 'containerPorts.socketmap=10465', '--set', 'service.ports.socketmap=25465',
      '--set', 'listeners.milter.enabled=false', '--set', 'listeners.policy.enabled=false',
    ]);
    const cfg = configOf(objs);
    assert.equal(cfg.listen.socketmap, '0.0.0.0:10465');
    assert.equal(cfg.listen.milter, null);
    assert.equal(cfg.listen.policy, null);
    assert.equal(cfg.listen.metrics, '0.0.0.0:9468');
    const ports = podOf(objs).container.ports;
    assert.deepEqual(ports.map((p: any) => [p.name, p.containerPort]).sort(), [['http', 8080], ['metrics', 9468], ['socketmap', 10465]]);
    const svc = one(objs, 'Service').spec.ports.map((p: any) => [p.name, p.port, p.targetPort]).sort();
    assert.deepEqual(svc, [['http', 8080, 'http'], ['metrics', 9468, 'metrics'], ['socketmap', 25465, 'socketmap']]);
    // A disabled listener is closed in the NetworkPolicy too.
    const np = one(objs, 'NetworkPolicy').spec;
    assert.deepEqual(np.ingress[0].ports.map((p: any) => p.port).sort(), ['http', 'socketmap']);
    const res = await configCheck(configText(objs), tmp, 'ports.yaml');
    assert.equal(res.code, 0, `config check rejected the rendered config:\n${res.stderr}`);
  });

  it('probes /healthz (liveness) and /readyz (readiness) on the metrics port, which a lookup flood does not block', () => {
    const { container } = podOf(defaults);
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'metrics' });
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'metrics' });
    assert.ok(container.ports.some((p: any) => p.name === 'metrics'));
  });

  it('runs rcptgate and the test pod non-root, read-only, without capabilities, under seccomp', () => {
    const testPod = one(defaults, 'Pod').spec;
    const { pod, container } = podOf(defaults);
    for (const [podSpec, c] of [[pod, container], [testPod, testPod.containers[0]]]) {
      assert.equal(podSpec.securityContext.runAsNonRoot, true);
      assert.ok(podSpec.securityContext.runAsUser > 0);
      assert.equal(podSpec.securityContext.seccompProfile.type, 'RuntimeDefault');
      assert.equal(podSpec.automountServiceAccountToken, false);
      assert.equal(podSpec.enableServiceLinks, false, 'service links would inject unknown RCPTGATE_* variables');
      const sc = c.securityContext;
      assert.equal(sc.runAsNonRoot, true);
      assert.equal(sc.readOnlyRootFilesystem, true);
      assert.equal(sc.allowPrivilegeEscalation, false);
      assert.deepEqual(sc.capabilities.drop, ['ALL']);
      assert.equal(sc.capabilities.add, undefined);
      assert.equal(sc.privileged, undefined);
    }
    assert.equal(one(defaults, 'ServiceAccount').automountServiceAccountToken, false);
  });

  it('mounts writable emptyDirs for /tmp and the snapshot, which lies on one', () => {
    const objs = allOn;
    const { pod, container } = podOf(objs);
    const snapshot = configOf(objs).sync.snapshotPath as string;
    for (const path of [snapshot, '/tmp/x']) {
      const { mount } = mountFor(container, path);
      assert.notEqual(mount.readOnly, true, `${path} must be writable`);
      const volume = pod.volumes.find((v: any) => v.name === mount.name);
      assert.ok(volume.emptyDir, `${path} lies on an emptyDir`);
    }
  });

  it('lets the pod drain within the grace period: preStop sleep plus drain timeout fit', () => {
    const { pod, container } = podOf(defaults);
    const drainMs = ms(validateConfig(configOf(defaults)).server.drainTimeout);
    const sleep = container.lifecycle?.preStop?.sleep?.seconds ?? 0;
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > sleep * 1000 + drainMs, 'grace > preStop sleep + drainTimeout');
  });

  it('spreads pods with this release\'s labels unless a constraint brings its own selector', () => {
    const { pod } = podOf(allOn);
    const selector = one(allOn, 'Deployment').spec.selector.matchLabels;
    assert.deepEqual(pod.topologySpreadConstraints[0].labelSelector.matchLabels, selector);
    assert.deepEqual(pod.topologySpreadConstraints[1].labelSelector.matchLabels, { 'app.kubernetes.io/name': 'rcptgate' });
  });

  it('with default values, admits only the MTA client selector to the mail and http ports and only Prometheus to the metrics port', () => {
    const np = one(defaults, 'NetworkPolicy');
    assert.equal((np.metadata as { namespace?: string }).namespace, 'mail');
    assert.deepEqual(np.spec.policyTypes, ['Ingress'], 'ingress is denied unless a rule admits it');
    assert.deepEqual(np.spec.podSelector, { matchLabels: one(defaults, 'Deployment').spec.selector.matchLabels });
    assert.equal(np.spec.ingress.length, 2, 'exactly two rules: MTAs and Prometheus');
    const [mta, prometheus] = np.spec.ingress;
    // The documented client selector: pods of the release namespace labelled <fullname>-client=true.
    assert.deepEqual(mta.from, [{ podSelector: { matchLabels: { 'mx-rcptgate-client': 'true' } } }]);
    assert.deepEqual(mta.ports, ['http', 'milter', 'policy', 'socketmap'].map((port) => ({ port, protocol: 'TCP' })));
    assert.deepEqual(prometheus.from, [
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } },
        podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } },
      },
    ]);
    assert.deepEqual(prometheus.ports, [{ port: 'metrics', protocol: 'TCP' }]);
    // Named ports resolve: each one is a container port of the pod.
    const named = new Set(podOf(defaults).container.ports.map((p: any) => p.name));
    for (const rule of np.spec.ingress) for (const p of rule.ports) assert.ok(named.has(p.port), p.port);
    // The helm test pod carries the client label, so `helm test` works behind the policy.
    assert.equal(one(defaults, 'Pod').metadata.labels?.['mx-rcptgate-client'], 'true');
  });

  it('admits the configured MTA peers besides the client label, and nothing but Prometheus to metrics', () => {
    const np = one(allOn, 'NetworkPolicy').spec;
    assert.deepEqual(np.policyTypes, ['Ingress']);
    assert.deepEqual(np.podSelector.matchLabels, one(allOn, 'Deployment').spec.selector.matchLabels);
    const [clients, metrics] = np.ingress;
    assert.ok(clients.from.some((p: any) => p.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === 'mail'));
    assert.deepEqual(clients.ports.map((p: any) => p.port).sort(), ['http', 'milter', 'policy', 'socketmap']);
    assert.deepEqual(metrics.ports.map((p: any) => p.port), ['metrics']);
    // The helm test pod carries the client label, so `helm test` works behind the policy.
    const testLabels = one(allOn, 'Pod').metadata.labels ?? {};
    const clientSelector = clients.from[0].podSelector.matchLabels;
    for (const [k, v] of Object.entries(clientSelector)) assert.equal(testLabels[k], v);
  });

  it('ships the same alert rules and dashboard as deploy/ (PrometheusRule, dashboard ConfigMap)', () => {
    const rule = one(allOn, 'PrometheusRule');
    const fromDeploy = parseYaml(readFileSync(join(ROOT, 'deploy/prometheus/rcptgate-rules.yaml'), 'utf8'));
    assert.deepEqual(rule.spec, fromDeploy);
    const dash = allOn.find((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-dashboard'));
    assert.ok(dash, 'dashboard ConfigMap missing');
    assert.equal(dash.metadata.labels?.grafana_dashboard, '1');
    assert.deepEqual(JSON.parse(dash.data['rcptgate.json']), JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/rcptgate.json'), 'utf8')));
  });

  it('scrapes /metrics on the metrics port with the ServiceMonitor', () => {
    const sm = one(allOn, 'ServiceMonitor').spec;
    assert.deepEqual(sm.endpoints.map((e: any) => [e.port, e.path]), [['metrics', '/metrics']]);
    assert.deepEqual(sm.selector.matchLabels, one(allOn, 'Service').spec.selector);
  });
});

describe('helm chart: rcptgate config and secrets', () => {
  it('renders a default config that the real `rcptgate config check` accepts and equals rcptgate\'s defaults', async () => {
    const text = configText(defaults);
    const res = await configCheck(text, tmp, 'default.yaml');
    assert.equal(res.code, 0, `config check failed:\n${res.stdout}${res.stderr}`);
    // Everything but `listen` (the chart binds all interfaces; rcptgate defaults to loopback).
    const { listen, ...rendered } = validateConfig(parseYaml(text));
    const { listen: loopback, ...own } = validateConfig({});
    assert.deepEqual(rendered, own);
    for (const [name, hostPort] of Object.entries(loopback)) assert.equal(listen[name as keyof typeof listen], hostPort!.replace(/^127\.0\.0\.1:/, '0.0.0.0:'), name);
  });

  it('renders an LDAP config with every option that the real `rcptgate config check` accepts', async () => {
    const res = await configCheck(configText(allOn), tmp, 'all-on.yaml');
    assert.equal(res.code, 0, `config check failed:\n${res.stdout}${res.stderr}`);
    const cfg = configOf(allOn);
    assert.equal(cfg.directory.kind, 'ldap');
    assert.equal(cfg.directory.ldap.preset, 'activedirectory');
    assert.equal(cfg.directory.ldap.urls.length, 2);
  });

  it('points --config at the mounted ConfigMap key', () => {
    const { pod, container } = podOf(defaults);
    const idx = container.args.indexOf('--config');
    assert.ok(idx >= 0 && container.args[0] === 'serve', 'args are serve --config FILE');
    const { mount, rest } = mountFor(container, container.args[idx + 1]);
    const volume = pod.volumes.find((v: any) => v.name === mount.name);
    assert.equal(volume.configMap.name, one(defaults, 'ConfigMap').metadata.name);
    assert.ok(rest in one(defaults, 'ConfigMap').data);
  });

  it('never puts the bind password or admin token into the ConfigMap; they reach rcptgate as mounted files', async () => {
    const password = 'Zq7-distinctive-BIND-pw-41x';
    const token = 'tok-distinctive-ADMIN-9qv';
    const lookup = 'tok-distinctive-LOOKUP-3kd';
    const objs = await render(['-f', ALL_ON, '--set', `secrets.ldapBindPassword=${password}`, '--set', `secrets.adminToken=${token}`, '--set', `secrets.lookupToken=${lookup}`]);
    const forbidden = [password, token, lookup].flatMap((s) => [s, Buffer.from(s).toString('base64')]);
    for (const obj of objs.filter((o) => o.kind !== 'Secret')) {
      const text = JSON.stringify(obj);
      for (const s of forbidden) assert.ok(!text.includes(s), `${obj.kind} contains a secret`);
    }
    const secret = one(objs, 'Secret');
    const { pod, container } = podOf(objs);
    const cfg = configOf(objs);
    for (const [file, value] of [[cfg.directory.ldap.bindPasswordFile, password], [cfg.admin.tokenFile, token], [cfg.http.lookupTokenFile, lookup]] as const) {
      const { mount, rest } = mountFor(container, file);
      const volume = pod.volumes.find((v: any) => v.name === mount.name);
      assert.equal(volume.secret.secretName, secret.metadata.name);
      const item = volume.secret.items.find((it: any) => it.path === rest);
      assert.ok(item, `${file} is projected from the Secret`);
      assert.equal(Buffer.from(secret.data[item.key], 'base64').toString(), value);
    }
  });

  it('uses an existing Secret instead of creating one', async () => {
    const objs = await render(['-f', ALL_ON, '--set', 'secrets.existingSecret=mail-credentials', '--set', 'secrets.ldapBindPassword=']);
    assert.ok(!objs.some((o) => o.kind === 'Secret'));
    const { pod } = podOf(objs);
    assert.equal(pod.volumes.find((v: any) => v.secret)?.secret.secretName, 'mail-credentials');
    assert.equal(one(objs, 'Deployment').spec.template.metadata.annotations['checksum/secret'], undefined);
  });

  it('refuses to render a bind DN without a password, or LDAP without servers or domains', async () => {
    assert.match(await renderFails(['--set', 'config.directory.kind=ldap', '--set', 'config.directory.ldap.urls={ldap://ldap.example}', '--set', 'config.domains={example.com}', '--set', 'config.directory.ldap.bindDN=cn=x']), /ldapBindPassword/);
    assert.match(await renderFails(['--set', 'config.directory.kind=ldap', '--set', 'config.domains={example.com}']), /ldap\.urls/);
    assert.match(await renderFails(['--set', 'config.directory.kind=ldap', '--set', 'config.directory.ldap.urls={ldap://ldap.example}']), /config\.domains/);
    assert.match(await renderFails(['--set', 'admin.enabled=true']), /adminToken/);
    assert.match(await renderFails(['--set', 'lookupToken.enabled=true']), /lookupToken/);
  });

  it('writes allow and deny lists into the ConfigMap and points the config at them', () => {
    const cm = one(allOn, 'ConfigMap');
    const { container } = podOf(allOn);
    const cfg = configOf(allOn);
    assert.equal(cm.data[mountFor(container, cfg.overrides.allowFile).rest], 'robot@example.com\n');
    assert.equal(cm.data[mountFor(container, cfg.overrides.denyFile).rest], 'former-ceo@example.com\nspamtrap@example.com\n');
  });

  it('rolls the pods when the config changes, and only then', async () => {
    const checksum = (objs: K8sObject[]) => one(objs, 'Deployment').spec.template.metadata.annotations['checksum/config'];
    const again = await render();
    const changed = await render(['--set', 'config.log.level=debug']);
    assert.match(checksum(defaults), /^[0-9a-f]{64}$/);
    assert.equal(checksum(again), checksum(defaults));
    assert.notEqual(checksum(changed), checksum(defaults));
  });

  it('creates a PodDisruptionBudget only with more than one replica', async () => {
    assert.ok(!(await render(['--set', 'replicaCount=1'])).some((o) => o.kind === 'PodDisruptionBudget'));
    const two = await render(['--set', 'replicaCount=2']);
    const pdb = one(two, 'PodDisruptionBudget');
    assert.deepEqual(pdb.spec.selector.matchLabels, one(two, 'Deployment').spec.selector.matchLabels);
    assert.equal(one(two, 'Deployment').spec.replicas, 2);
    // With the HPA on, replicas belong to the HPA and its minimum decides.
    assert.equal(one(allOn, 'Deployment').spec.replicas, undefined);
    assert.ok(!(await render(['--set', 'autoscaling.enabled=true', '--set', 'autoscaling.minReplicas=1'])).some((o) => o.kind === 'PodDisruptionBudget'));
  });

  it('tells in NOTES.txt how to point Postfix at the Service', async () => {
    // helm template does not render NOTES.txt: render a copy of it inside a ConfigMap.
    const copy = join(tmp, 'notes-chart');
    await cp(CHART, copy, { recursive: true });
    const notes = await readFile(join(copy, 'templates/NOTES.txt'), 'utf8');
    await rm(join(copy, 'templates/NOTES.txt'));
    await writeFile(join(copy, 'templates/_notes.tpl'), `{{- define "notes-preview" -}}\n${notes}\n{{- end }}\n`);
    await writeFile(join(copy, 'templates/notes-preview.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "notes-preview" . | quote }}\n');
    const objs = await render(['--set', 'service.ports.socketmap=25465'], copy);
    const text = objs.find((o) => o.metadata.name === 'notes')!.data.notes as string;
    assert.match(text, /relay_domains = socketmap:inet:mx-rcptgate\.mail\.svc:25465:domains/);
    assert.match(text, /relay_recipient_maps = socketmap:inet:mx-rcptgate\.mail\.svc:25465:recipients/);
    assert.match(text, /check_policy_service inet:mx-rcptgate\.mail\.svc:9466/);
  });
});

describe('helm test hook', () => {
  let server: ChildProcess | undefined;
  after(() => {
    if (server?.pid && server.exitCode === null) process.kill(server.pid, 'SIGKILL');
  });

  function hookScript(objs: K8sObject[]) {
    const pod = one(objs, 'Pod');
    assert.equal(pod.metadata.annotations?.['helm.sh/hook'], 'test');
    const c = pod.spec.containers[0];
    assert.deepEqual(c.command.slice(0, 2), ['node', '-e']);
    assert.equal(c.image, podOf(objs).container.image, 'the hook uses the rcptgate image (it has node)');
    const env = Object.fromEntries(c.env.map((e: any) => [e.name, e.value]));
    assert.equal(env.TARGET_HOST, `${one(objs, 'Service').metadata.name}.mail.svc`);
    assert.equal(Number(env.HTTP_PORT), one(objs, 'Service').spec.ports.find((p: any) => p.name === 'http').port);
    assert.equal(Number(env.SOCKETMAP_PORT), one(objs, 'Service').spec.ports.find((p: any) => p.name === 'socketmap').port);
    return c.command[2] as string;
  }

  async function runHook(script: string, httpPort: number, socketmapPort: number) {
    return run(process.execPath, ['-e', script], {
      env: { PATH: process.env.PATH, TARGET_HOST: '127.0.0.1', HTTP_PORT: String(httpPort), SOCKETMAP_PORT: String(socketmapPort) },
      cwd: tmp,
    });
  }

  it('passes against a real rcptgate serving the rendered config, and fails when socketmap is down', async () => {
    const script = hookScript(defaults);
    const file = join(tmp, 'serve.yaml');
    await writeFile(file, configText(defaults));
    const [http, socketmap, policy, milter] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_'))),
      RCPTGATE_LISTEN_HTTP: `127.0.0.1:${http}`,
      RCPTGATE_LISTEN_SOCKETMAP: `127.0.0.1:${socketmap}`,
      RCPTGATE_LISTEN_POLICY: `127.0.0.1:${policy}`,
      RCPTGATE_LISTEN_MILTER: `127.0.0.1:${milter}`,
      RCPTGATE_LISTEN_METRICS: `127.0.0.1:${await freePort()}`,
      RCPTGATE_LOG_LEVEL: 'warn',
    };
    server = spawn(process.execPath, [...rcptgateArgv(), 'serve', '--config', file], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    server.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<void>((res) => server!.once('exit', () => res()));
    // Wait until the HTTP listener answers (or the server dies); the bound only stops a hang.
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (server.exitCode !== null) assert.fail(`rcptgate serve exited ${server.exitCode}: ${stderr}`);
      if (Date.now() > deadline) assert.fail(`rcptgate serve never answered GET /healthz: ${stderr}`);
      const ok = await fetch(`http://127.0.0.1:${http}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const good = await runHook(script, http, socketmap);
    assert.equal(good.code, 0, `the hook failed against a healthy rcptgate:\n${good.stdout}${good.stderr}`);
    assert.match(good.stdout, /ok socketmap/);
    const closed = await runHook(script, http, await freePort());
    assert.notEqual(closed.code, 0, 'the hook must fail when the socketmap port does not answer');
    server.kill('SIGTERM');
    await exited;
    assert.equal(server.exitCode, 0, `rcptgate did not exit cleanly on SIGTERM: ${stderr}`);
  });
});

describe('container image files', () => {
  let dockerfile = '';
  let finalStage: string[] = [];
  before(async () => {
    dockerfile = await readFile(join(ROOT, 'Dockerfile'), 'utf8');
    const instructions = dockerfile
      .replace(/\\\n/g, ' ')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const lastFrom = instructions.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
    finalStage = instructions.slice(lastFrom);
  });

  it('builds in a separate stage and runs on Node 24 slim', () => {
    assert.ok((dockerfile.match(/^FROM\s/gim) ?? []).length >= 2, 'multi-stage build');
    assert.match(finalStage[0]!, /^FROM node:24-bookworm-slim$/);
    assert.ok(finalStage.some((l) => /^COPY --from=\w+ \/app\/dist/.test(l)), 'dist comes from the build stage');
  });

  it('installs production dependencies only in the runtime image', () => {
    const installs = finalStage.filter((l) => /^RUN .*\bnpm (ci|install|i)\b/.test(l));
    assert.equal(installs.length, 1);
    assert.match(installs[0]!, /npm ci --omit=dev --ignore-scripts/);
    assert.ok(!finalStage.some((l) => /\b(tsx|typescript|tsc)\b/.test(l)), 'no dev tools in the runtime stage');
  });

  it('runs as a numeric non-root user with node as PID 1 in exec form', () => {
    const users = finalStage.filter((l) => /^USER\s/.test(l));
    assert.equal(users.length, 1);
    const uid = Number(/^USER\s+(\d+)(:\d+)?$/.exec(users[0]!)?.[1]);
    assert.ok(uid > 0, `USER must be a numeric non-root uid: ${users[0]}`);
    const podUid = podOf(defaults).container.securityContext.runAsUser;
    assert.equal(uid, podUid, 'the chart runs the image user');
    const entry = finalStage.find((l) => /^ENTRYPOINT\s/.test(l))!;
    assert.deepEqual(JSON.parse(entry.replace(/^ENTRYPOINT\s+/, '')), ['node', 'dist/main.js']);
    const cmd = finalStage.find((l) => /^CMD\s/.test(l))!;
    assert.deepEqual(JSON.parse(cmd.replace(/^CMD\s+/, '')), ['serve']);
  });

  it('binds every listener on all interfaces explicitly, where rcptgate itself defaults to loopback', async () => {
    const env = finalStage.find((l) => /^ENV RCPTGATE_CONFIG=/.test(l));
    assert.ok(env, 'the image names its config in RCPTGATE_CONFIG');
    const inImage = env!.replace(/^ENV RCPTGATE_CONFIG=/, '');
    assert.match(inImage, /^\/app\//);
    const file = join(ROOT, inImage.replace(/^\/app\//, ''));
    assert.ok(finalStage.some((l) => /^COPY examples /.test(l)), 'the file is copied into the image');
    const cfg = validateConfig(parseYaml(await readFile(file, 'utf8')));
    const defaultsListen = validateConfig({}).listen;
    for (const [name, hostPort] of Object.entries(defaultsListen)) {
      assert.match(hostPort!, /^127\.0\.0\.1:/, `rcptgate's own default for ${name} is loopback`);
      assert.equal(cfg.listen[name as keyof typeof cfg.listen], `0.0.0.0:${portOf(hostPort!)}`, name);
    }
    assert.equal(configOf(defaults).listen.http, '0.0.0.0:8080', 'the chart binds 0.0.0.0 too');
  });

  it('exposes the five default listener ports of rcptgate and the chart', () => {
    const exposed = finalStage.filter((l) => /^EXPOSE\s/.test(l)).flatMap((l) => l.split(/\s+/).slice(1)).map(Number).sort();
    const defaultsListen = validateConfig({}).listen;
    const fromConfig = Object.values(defaultsListen).map((v) => portOf(v!)).sort();
    assert.deepEqual(exposed, fromConfig);
    assert.deepEqual(podOf(defaults).container.ports.map((p: any) => p.containerPort).sort(), fromConfig);
  });

  it('copies only files that exist and that .dockerignore lets through', async () => {
    const ignore = (await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const must of ['node_modules', 'dist', '.git']) assert.ok(ignore.includes(must), `.dockerignore excludes ${must}`);
    const sources = dockerfile
      .split('\n')
      .filter((l) => /^COPY\s/.test(l) && !/--from=/.test(l))
      .flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
    assert.ok(sources.length > 0);
    for (const src of sources) {
      assert.ok(existsSync(join(ROOT, src)), `COPY source ${src} is missing from the repository`);
      assert.ok(!ignore.includes(src) && !ignore.includes(src.split('/')[0]!), `${src} is excluded by .dockerignore`);
    }
  });
});
