import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import SwaggerParser from '@apidevtools/swagger-parser';
import { parse as parseYaml } from 'yaml';
import { PROBLEM_BASE, Problems } from '../../src/http/problem.js';
import { SPEC_PATH, SpecChecker, loadSpec, operations, type Spec } from '../helpers/http-openapi-helper.js';

/** Words that keep their capitals inside a sentence-case summary. */
const PROPER_NOUNS = new Set(['API', 'OpenAPI', 'Prometheus']);

let spec: Spec;
let raw: string;
before(async () => {
  spec = await loadSpec();
  raw = await readFile(SPEC_PATH, 'utf8');
});

describe('openapi.yaml', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const api = (await SwaggerParser.validate(SPEC_PATH)) as { openapi: string };
    assert.match(api.openapi, /^3\.1\./);
  });

  it('has the version of package.json', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal((parseYaml(raw) as { info: { version: string } }).info.version, pkg.version);
  });

  it('names operations with unique camelCase ids and sentence-case summaries', () => {
    const ids = new Set<string>();
    for (const { path, method, op } of operations(spec)) {
      const { operationId, summary } = op as unknown as { operationId: string; summary: string };
      assert.match(operationId, /^[a-z][a-zA-Z0-9]*$/, `${method} ${path}`);
      assert.ok(!ids.has(operationId), `duplicate operationId ${operationId}`);
      ids.add(operationId);
      const [first = '', ...rest] = summary.split(' ');
      const sentenceCase = /^[A-Z][a-z]*$/.test(first) && rest.every((w) => /^[a-z0-9]+$/.test(w) || PROPER_NOUNS.has(w));
      assert.ok(sentenceCase && !summary.endsWith('.'), `summary of ${operationId} is not sentence case: ${summary}`);
    }
  });

  it('documents the endpoints of the contract', () => {
    const ops = operations(spec).map(({ path, method }) => `${method.toUpperCase()} ${path}`).sort();
    assert.deepEqual(ops, [
      'DELETE /v1/cache',
      'DELETE /v1/cache/{address}',
      'GET /',
      'GET /healthz',
      'GET /metrics',
      'GET /openapi.yaml',
      'GET /readyz',
      'GET /v1/recipients/{address}',
      'POST /v1/recipients:check',
    ]);
  });

  it('answers every error of the API as application/problem+json, except /readyz', () => {
    for (const { path, method, op } of operations(spec)) {
      for (const [status, response] of Object.entries(op.responses)) {
        if (Number(status) < 400 || path === '/readyz') continue;
        assert.deepEqual(Object.keys(response.content ?? {}), ['application/problem+json'], `${method} ${path} ${status}`);
      }
    }
    for (const [name, response] of Object.entries(spec.components.responses)) {
      assert.deepEqual(Object.keys(response.content ?? {}), ['application/problem+json'], name);
    }
  });

  it('lists exactly the problem types the server uses, with their status codes', () => {
    const listed = [...raw.matchAll(/\| `(https:\/\/rcptgate\.dev\/problems\/[a-z-]+)` \| (\d{3}) \|/g)].map((m) => [m[1], Number(m[2])]);
    const used = Object.entries(Problems).map(([slug, p]) => [PROBLEM_BASE + slug, p.status]);
    assert.deepEqual(
      listed.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      used.sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
  });

  it('has examples that match their schemas', () => {
    const checker = new SpecChecker(spec);
    let count = 0;
    const visit = (node: unknown, where: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => visit(n, `${where}/${i}`));
      if (typeof node !== 'object' || node === null) return;
      const n = node as Record<string, unknown>;
      // A media type object: a schema next to example(s).
      if (n['schema'] && typeof n['schema'] === 'object' && (n['example'] !== undefined || n['examples'] !== undefined)) {
        const schema = n['schema'] as Record<string, unknown>;
        if (n['example'] !== undefined) {
          checker.validate(schema, n['example'], `${where}/example`);
          count++;
        }
        for (const [name, ex] of Object.entries((n['examples'] ?? {}) as Record<string, { value: unknown }>)) {
          checker.validate(schema, ex.value, `${where}/examples/${name}`);
          count++;
        }
      }
      for (const [k, v] of Object.entries(n)) if (k !== 'schema') visit(v, `${where}/${k}`);
    };
    visit(spec.paths, '#/paths');
    visit(spec.components.responses, '#/components/responses');
    assert.ok(count >= 15, `only ${count} examples checked`);
  });
});
