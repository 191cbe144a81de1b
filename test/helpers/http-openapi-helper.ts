/**
 * Checks HTTP responses against openapi.yaml: the status must be documented for the operation,
 * the content type must be one the spec lists, required headers must be present and valid, and
 * the body must match the schema (Ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses). Also records
 * which documented responses a test run produced, so a test can require all of them.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import type { Response } from 'supertest';

export const SPEC_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

type Json = Record<string, unknown>;
interface MediaType {
  schema?: Json;
  example?: unknown;
  examples?: Record<string, { value?: unknown }>;
}
interface ResponseObject {
  description: string;
  headers?: Record<string, { required?: boolean; schema?: Json }>;
  content?: Record<string, MediaType>;
}
interface Operation {
  operationId: string;
  responses: Record<string, ResponseObject>;
}
export interface Spec {
  paths: Record<string, Record<string, Operation | unknown>>;
  components: { responses: Record<string, ResponseObject>; schemas: Record<string, Json> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

export function newAjv(): Ajv2020 {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  formats.default(ajv);
  // OpenAPI's own keyword next to JSON Schema ones.
  ajv.addKeyword('example');
  return ajv;
}

/** The spec, validated and with every $ref resolved. */
export async function loadSpec(): Promise<Spec> {
  await SwaggerParser.validate(SPEC_PATH);
  return (await SwaggerParser.dereference(SPEC_PATH)) as unknown as Spec;
}

export function operations(spec: Spec): Array<{ path: string; method: string; op: Operation }> {
  const out: Array<{ path: string; method: string; op: Operation }> = [];
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      const op = item[method] as Operation | undefined;
      if (op) out.push({ path, method, op });
    }
  }
  return out;
}

export class SpecChecker {
  private readonly ajv = newAjv();
  private readonly compiled = new Map<object, ValidateFunction>();
  private readonly templates: Array<{ path: string; re: RegExp }>;
  /** "METHOD /template STATUS" of every documented response seen. */
  readonly seen = new Set<string>();

  constructor(readonly spec: Spec) {
    this.templates = Object.keys(spec.paths).map((path) => ({
      path,
      re: new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '.+')}$`),
    }));
  }

  /** Every documented response (per operation and status) the checks have not seen yet. */
  unseen(): string[] {
    return operations(this.spec)
      .flatMap(({ path, method, op }) => Object.keys(op.responses).map((s) => `${method.toUpperCase()} ${path} ${s}`))
      .filter((k) => !this.seen.has(k));
  }

  /** Asserts that `res` is what openapi.yaml promises; returns it for chaining. */
  check(res: Response): Response {
    const req = (res as unknown as { req: { method: string; path: string } }).req;
    const method = req.method.toLowerCase();
    // express routes ignore one trailing slash (non-strict routing)
    const path = new URL(req.path, 'http://x').pathname.replace(/(.)\/$/, '$1');
    const where = `${req.method} ${path} → ${res.status}`;
    const template = this.templates.find((t) => t.re.test(path))?.path;
    const op = template ? (this.spec.paths[template]?.[method === 'head' ? 'get' : method] as Operation | undefined) : undefined;
    const shared = this.spec.components.responses;
    let doc: ResponseObject | undefined;
    if (res.status === 500) doc = shared['InternalError'];
    else if (op) {
      doc = op.responses[String(res.status)];
      assert.ok(doc, `${where}: status not documented for ${op.operationId}`);
      this.seen.add(`${(method === 'head' ? 'get' : method).toUpperCase()} ${template} ${res.status}`);
    } else if (template && res.status === 405) doc = shared['MethodNotAllowed'];
    else if (!template && res.status === 404) doc = shared['NotFound'];
    assert.ok(doc, `${where}: no operation or shared response in openapi.yaml covers this`);

    for (const [name, header] of Object.entries(doc.headers ?? {})) {
      const value = res.headers[name.toLowerCase()] as string | undefined;
      if (!header.required && value === undefined) continue;
      assert.ok(value !== undefined, `${where}: header ${name} missing`);
      if (header.schema) {
        const typed = header.schema['type'] === 'integer' && /^\d+$/.test(value) ? Number(value) : value;
        this.validate(header.schema, typed, `${where} header ${name}`);
      }
    }

    if (!doc.content) {
      assert.equal(res.text ?? '', '', `${where}: the spec documents no body`);
      return res;
    }
    const contentType = String(res.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const media = doc.content[contentType];
    assert.ok(media, `${where}: content type ${contentType} not one of ${Object.keys(doc.content).join(', ')}`);
    if (method !== 'head' && media.schema) {
      const body = /json$/.test(contentType) ? res.body : res.text;
      this.validate(media.schema, body, where);
    }
    return res;
  }

  validate(schema: Json, value: unknown, where: string): void {
    let fn = this.compiled.get(schema);
    if (!fn) {
      fn = this.ajv.compile(schema);
      this.compiled.set(schema, fn);
    }
    assert.ok(fn(value), `${where}: does not match openapi.yaml: ${this.ajv.errorsText(fn.errors)}\n${JSON.stringify(value)}`);
  }
}
