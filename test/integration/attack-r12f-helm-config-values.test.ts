/**
 * Chart values that rendered, installed, and then crash-looped: rcptgate refuses them at start
 * (exit 78) and the pod restarts for ever, where the values schema could have said so at
 * `helm install`. A wildcard catch-all domain (`*.example.com`), a domain with an underscore or
 * two dots, a search base written as a domain (`baseDN: example.com`), a filter without `%s` or
 * `%u`, a CIDR range of /33. The neighbouring values that work still render, and rcptgate accepts
 * the config the chart renders from them. The real helm and the real CLI.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { HELM_INSTALL_MS, helmTemplate, installHelm } from '../helpers/helm.js';
import { REPO_ROOT } from '../helpers/process.js';

let helm = '';
let dir = '';
before(async () => {
  helm = await installHelm();
  dir = mkdtempSync(path.join(tmpdir(), 'rcptgate-r12f-values-'));
}, { timeout: HELM_INSTALL_MS + 60_000 });
after(() => rmSync(dir, { recursive: true, force: true }));

const LDAP = ['--set', 'config.directory.kind=ldap', '--set', 'config.directory.ldap.urls={ldap://ldap.example}', '--set', 'config.domains={example.com}'];

/** `rcptgate config check` on the config file the chart rendered: its exit status and stderr. */
function checkRendered(manifests: string): { code: number | null; stderr: string } {
  const map = parseAllDocuments(manifests).map((d) => d.toJS() as { kind?: string; data?: Record<string, string> }).find((d) => d?.kind === 'ConfigMap' && d.data?.['rcptgate.yaml']);
  assert.ok(map, 'no ConfigMap with rcptgate.yaml rendered');
  const file = path.join(dir, `rendered-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, map.data!['rcptgate.yaml']!);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RCPTGATE_')));
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'config', 'check', '--config', file], { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('helm chart: rcptgate config values that would crash-loop the pod', () => {
  const refused: Array<[string, string[], RegExp]> = [
    ['a wildcard catch-all domain', ['--set', 'config.catchAllDomains={*.example.com}'], /config\/catchAllDomains\/0/],
    ['a wildcard served domain (list form)', ['--set', 'config.domains={*.example.com}'], /config\/domains/],
    ['a served domain with two dots (map form)', ['--set-json', 'config.domains={"example..com":{}}'], /config\/domains/],
    ['a domain with an underscore', ['--set', 'config.domains={mail_relay.example.com}'], /config\/domains/],
    ['a search base written as a domain', [...LDAP, '--set', 'config.directory.ldap.baseDN=example.com'], /config\/directory\/ldap\/baseDN/],
    ['a filter with neither %s nor %u', [...LDAP, '--set', 'config.directory.ldap.filter=(mail=%d)'], /config\/directory\/ldap\/filter/],
    ['a CIDR range of /33', ['--set', 'config.http.lookupAllowFrom={10.0.0.0/33}'], /config\/http\/lookupAllowFrom\/0/],
    ['an IPv6 range of /129', ['--set', 'config.http.lookupAllowFrom={fd00::/129}'], /config\/http\/lookupAllowFrom\/0/],
  ];
  for (const [what, args, key] of refused) {
    it(`refuses ${what} at render, naming the key`, async () => {
      const r = await helmTemplate(helm, args);
      assert.equal(r.ok, false, `helm template accepted ${args.join(' ')}`);
      assert.match(r.output, key);
    });
  }

  const accepted: Array<[string, string[]]> = [
    ['IDN, A-label, trailing-dot and single-label domains', ['--set-json', 'config.domains=["bücher.example","xn--mnchen-3ya.example","example.com.","Example.ORG","localhost","a-b.example"]', '--set', 'config.catchAllDomains={catchall.example}']],
    ['the map form of domains', ['--set-json', 'config.domains={"example.com":{},"legacy.example":{"catchAll":true}}']],
    ['a DN with spaces, an OID attribute, and the empty base of a Global Catalog', [...LDAP, '--set', 'config.directory.ldap.baseDN=ou=People\\, dc=example\\, dc=com']],
    ['an OID-named base', [...LDAP, '--set', 'config.directory.ldap.baseDN=0.9.2342.19200300.100.1.25=example']],
    ['the empty base', [...LDAP, '--set', 'config.directory.ldap.baseDN=']],
    ['filters with %s, with %u and %d', [...LDAP, '--set', 'config.directory.ldap.filter=(&(uid=%u)(domain=%d))']],
    ['IPv4 and IPv6 ranges and single addresses', ['--set', 'config.http.lookupAllowFrom={127.0.0.0/8,::1/128,10.1.2.3,fd00::/8,::ffff:10.0.0.0/104}']],
  ];
  for (const [what, args] of accepted) {
    it(`renders ${what}, and rcptgate accepts the config rendered`, async () => {
      const r = await helmTemplate(helm, args);
      assert.ok(r.ok, r.output);
      const check = checkRendered(r.output);
      assert.equal(check.code, 0, check.stderr);
    });
  }
});
