/**
 * The OpenAPI document is how integrators learn the API: every route must be in it, with its
 * body, parameters, success response and problem responses. The expected routes are written out
 * by hand below, so a route added without being described (or described but not listed here)
 * makes this file fail until someone looks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';

let t: TestApp;
let doc: OpenApiDocument;
beforeAll(async () => {
  t = await createTestApp();
  const response = await t.request({ method: 'GET', url: '/openapi.json', key: null });
  expect(response.statusCode).toBe(200);
  doc = response.json<OpenApiDocument>();
});
afterAll(async () => {
  await t.close();
});

interface Schema {
  $ref?: string;
  [key: string]: unknown;
}
interface MediaTypes {
  [mediaType: string]: { schema?: Schema };
}
interface Operation {
  security?: Array<Record<string, string[]>>;
  requestBody?: { required?: boolean; content?: MediaTypes };
  parameters?: Array<{ in: string; name: string; required?: boolean; schema?: Schema }>;
  responses?: Record<string, { description?: string; content?: MediaTypes }>;
}
interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  security?: Array<Record<string, string[]>>;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas?: Record<string, Schema>; securitySchemes?: Record<string, unknown> };
}

interface ExpectedRoute {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** As Fastify writes it (`:param`). */
  path: string;
  success: number;
  body?: true;
  query?: string[];
  /** Answers with this media type instead of JSON (a server-sent event stream). */
  streams?: string;
}

/** Every route under /api/v1, written out by hand from src/. */
const EXPECTED_ROUTES: ExpectedRoute[] = [
  { method: 'POST', path: '/api/v1/api-keys', success: 201, body: true },
  { method: 'GET', path: '/api/v1/api-keys', success: 200, query: ['limit', 'cursor'] },
  { method: 'DELETE', path: '/api/v1/api-keys/:id', success: 204 },
  { method: 'POST', path: '/api/v1/devices', success: 201, body: true },
  { method: 'GET', path: '/api/v1/devices', success: 200, query: ['type', 'msisdn', 'limit', 'cursor'] },
  { method: 'GET', path: '/api/v1/devices/:device_id', success: 200 },
  { method: 'PATCH', path: '/api/v1/devices/:device_id', success: 200, body: true },
  { method: 'DELETE', path: '/api/v1/devices/:device_id', success: 204 },
  { method: 'POST', path: '/api/v1/devices/:device_id/rotate-secret', success: 200 },
  { method: 'GET', path: '/api/v1/event-logs', success: 200, query: ['type', 'device_id', 'msisdn', 'correlation_id', 'since', 'until', 'limit', 'cursor'] },
  {
    method: 'GET',
    path: '/api/v1/event-logs/stream',
    success: 200,
    query: ['type', 'device_id', 'msisdn', 'correlation_id', 'last_event_id'],
    streams: 'text/event-stream',
  },
  { method: 'POST', path: '/api/v1/rules', success: 201, body: true },
  { method: 'GET', path: '/api/v1/rules', success: 200, query: ['event_type', 'device_id', 'msisdn', 'enabled', 'limit', 'cursor'] },
  { method: 'GET', path: '/api/v1/rules/:id', success: 200 },
  { method: 'PATCH', path: '/api/v1/rules/:id', success: 200, body: true },
  { method: 'DELETE', path: '/api/v1/rules/:id', success: 204 },
  { method: 'POST', path: '/api/v1/webhooks/events', success: 202, body: true },
  { method: 'GET', path: '/api/v1/alarms', success: 200, query: ['status', 'device_id', 'rule_id', 'limit', 'cursor'] },
  { method: 'GET', path: '/api/v1/alarms/:id', success: 200 },
  { method: 'POST', path: '/api/v1/alarms/:id/cancel', success: 200 },
  { method: 'GET', path: '/api/v1/calls', success: 200, query: ['status', 'alarm_id', 'to', 'limit', 'cursor'] },
  { method: 'POST', path: '/api/v1/incoming-calls', success: 202, body: true },
  { method: 'GET', path: '/api/v1/incoming-calls', success: 200, query: ['msisdn', 'since', 'limit', 'cursor'] },
  { method: 'GET', path: '/api/v1/incoming-calls/:call_id', success: 200 },
];

const toOpenApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
const pathParams = (path: string) => [...path.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1]!);
const key = (method: string, path: string) => `${method.toUpperCase()} ${path}`;
const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

/** Every method + path the app serves, read from Fastify's route tree (HEAD twins left out). */
function registeredRoutes(): string[] {
  const routes: string[] = [];
  const stack: string[] = [];
  for (const line of t.app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:│ {3}| {4})*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    const path = (depth > 0 ? stack[depth - 1]! : '') + match[2]!;
    stack[depth] = path;
    stack.length = depth + 1;
    for (const method of (match[3] ?? '').split(',').map((m) => m.trim())) {
      if (method && method !== 'HEAD') routes.push(key(method, path));
    }
  }
  return routes.sort();
}

/** Every documented operation: `METHOD /path/{param}`. */
function documentedOperations(): string[] {
  return Object.entries(doc.paths)
    .flatMap(([path, operations]) => Object.keys(operations).filter((method) => HTTP_METHODS.has(method)).map((method) => key(method, path)))
    .sort();
}

function operation(route: ExpectedRoute): Operation {
  const op = doc.paths[toOpenApiPath(route.path)]?.[route.method.toLowerCase()];
  expect(op, `${route.method} ${route.path} is not in the OpenAPI document`).toBeDefined();
  return op!;
}

function jsonSchemaOf(content: MediaTypes | undefined, context: string): Schema {
  expect(content, context).toBeDefined();
  const schemas = Object.entries(content!).filter(([mediaType]) => /json/.test(mediaType)).map(([, value]) => value.schema);
  expect(schemas.length, `${context}: no JSON media type`).toBeGreaterThan(0);
  expect(schemas[0], `${context}: no schema`).toBeDefined();
  return schemas[0]!;
}

describe('GET /openapi.json', () => {
  it('is an OpenAPI 3.x document served without a key', async () => {
    const response = await t.request({ method: 'GET', url: '/openapi.json', key: null });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
    expect(doc.info.title).toBe('TAS IoT Gateway');
    expect(doc.info.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Object.keys(doc.components.securitySchemes ?? {})).toEqual(expect.arrayContaining(['apiKey', 'bearer']));
  });

  it('lists exactly the /api/v1 routes written out here, and so does the router', () => {
    const expected = EXPECTED_ROUTES.map((route) => key(route.method, route.path)).sort();
    // A route registered in src but missing from the list (or the other way round) fails here...
    expect(registeredRoutes().filter((route) => route.split(' ')[1]!.startsWith('/api/'))).toEqual(expected);
    // ...and one the router has but the document leaves out (hidden, or undocumented) fails here.
    const documented = documentedOperations().filter((operation) => operation.split(' ')[1]!.startsWith('/api/'));
    expect(documented).toEqual(EXPECTED_ROUTES.map((route) => key(route.method, toOpenApiPath(route.path))).sort());
  });

  it('reads the router correctly (the route list above is not vacuous)', () => {
    const routes = registeredRoutes();
    expect(routes).toEqual(expect.arrayContaining(['GET /healthz', 'GET /readyz', 'GET /openapi.json', 'POST /api/v1/devices/:device_id/rotate-secret']));
    for (const route of routes.filter((route) => !route.includes('*'))) {
      const [method, url] = route.split(' ') as [string, string];
      expect(t.app.hasRoute({ method, url }), route).toBe(true);
    }
  });

  it('declares problem responses with the media type they are sent with (application/problem+json)', () => {
    const declaredAs = new Set<string>();
    for (const route of EXPECTED_ROUTES) {
      for (const [status, response] of Object.entries(operation(route).responses ?? {})) {
        if (/^[45]/.test(status)) declaredAs.add(`${route.method} ${route.path} ${status}: ${Object.keys(response.content ?? {}).join(', ')}`);
      }
    }
    expect([...declaredAs].filter((line) => !line.includes('application/problem+json'))).toEqual([]);
  });

  it('documents nothing outside /api/v1 but health and metrics', () => {
    expect(documentedOperations().filter((operation) => !operation.split(' ')[1]!.startsWith('/api/v1/'))).toEqual(['GET /healthz', 'GET /metrics', 'GET /readyz']);
  });
});

describe.each(EXPECTED_ROUTES.map((route) => [`${route.method} ${route.path}`, route] as const))('%s', (_name, route) => {
  it('has a request body schema exactly when it takes a body', () => {
    const op = operation(route);
    if (route.body) {
      const schema = jsonSchemaOf(op.requestBody?.content, 'requestBody');
      expect(schema.type ?? schema.$ref).toBeDefined();
      if (schema.type === 'object') expect(Object.keys((schema.properties as object | undefined) ?? {}).length).toBeGreaterThan(0);
    } else {
      expect(op.requestBody).toBeUndefined();
    }
  });

  it('describes its path and query parameters', () => {
    const op = operation(route);
    const parameters = op.parameters ?? [];
    const path = parameters.filter((parameter) => parameter.in === 'path');
    expect(path.map((parameter) => parameter.name).sort()).toEqual(pathParams(route.path).sort());
    for (const parameter of path) {
      expect(parameter.required, parameter.name).toBe(true);
      expect(parameter.schema, parameter.name).toBeDefined();
    }
    const query = parameters.filter((parameter) => parameter.in === 'query');
    expect(query.map((parameter) => parameter.name).sort()).toEqual([...(route.query ?? [])].sort());
    for (const parameter of query) expect(parameter.schema, parameter.name).toBeDefined();
  });

  it('describes its success response', () => {
    const op = operation(route);
    const responses = op.responses ?? {};
    const success = Object.keys(responses).filter((status) => /^2\d\d$/.test(status));
    expect(success).toEqual([String(route.success)]);
    const response = responses[String(route.success)]!;
    if (route.success === 204) {
      expect(response.content).toBeUndefined();
    } else if (route.streams) {
      expect(Object.keys(response.content ?? {})).toEqual([route.streams]);
    } else {
      const schema = jsonSchemaOf(response.content, `${route.success} response`);
      expect(schema.type ?? schema.$ref).toBeDefined();
    }
  });

  it('describes its 401, 403 and 422 answers as problems', () => {
    const op = operation(route);
    for (const status of ['401', '403', '422']) {
      const response = op.responses?.[status];
      expect(response, `${status} response`).toBeDefined();
      expect(jsonSchemaOf(response!.content, `${status} response`).$ref).toBe('#/components/schemas/Problem');
    }
    if (route.body) {
      for (const status of ['413', '415']) {
        expect(jsonSchemaOf(op.responses?.[status]?.content, `${status} response`).$ref).toBe('#/components/schemas/Problem');
      }
    }
  });

  it('needs a key', () => {
    const op = operation(route);
    const security = op.security ?? doc.security ?? [];
    expect(security.length).toBeGreaterThan(0);
    for (const requirement of security) expect(Object.keys(requirement).length).toBeGreaterThan(0);
  });
});

describe('components', () => {
  it('has the Problem and Device schemas', () => {
    const schemas = doc.components.schemas ?? {};
    expect(schemas.Problem).toMatchObject({ type: 'object' });
    expect(schemas.Problem!.required).toEqual(expect.arrayContaining(['type', 'title', 'status', 'detail', 'code', 'request_id']));
    expect(schemas.Device).toMatchObject({ type: 'object' });
    expect(Object.keys(schemas.Device!.properties as object)).toEqual(
      expect.arrayContaining(['device_id', 'type', 'msisdn', 'name', 'endpoint', 'metadata', 'enabled', 'has_signing_secret', 'created_at', 'updated_at']),
    );
  });

  it('every $ref in the document resolves to a component schema', () => {
    const refs: string[] = [];
    const walk = (value: unknown): void => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value && typeof value === 'object') {
        for (const [name, child] of Object.entries(value)) {
          if (name === '$ref' && typeof child === 'string') refs.push(child);
          else walk(child);
        }
      }
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(0);
    const schemas = doc.components.schemas ?? {};
    for (const ref of new Set(refs)) {
      const match = /^#\/components\/schemas\/(.+)$/.exec(ref);
      expect(match, ref).not.toBeNull();
      expect(schemas[match![1]!], ref).toBeDefined();
    }
  });
});

describe('public routes', () => {
  it.each(['/healthz', '/readyz', '/openapi.json'])('%s answers without a key', async (url) => {
    const response = await t.request({ method: 'GET', url, key: null });
    expect(response.statusCode).toBe(200);
  });

  it('health routes are documented as needing no key', () => {
    expect(doc.paths['/healthz']?.get?.security).toEqual([]);
    expect(doc.paths['/readyz']?.get?.security).toEqual([]);
  });

  it('GET /docs serves the UI without a key', async () => {
    let response = await t.request({ method: 'GET', url: '/docs', key: null });
    for (let hops = 0; hops < 3 && response.statusCode >= 300 && response.statusCode < 400; hops++) {
      const location = response.headers.location as string;
      expect(location).toMatch(/^(\/docs|\.\/|[^/])/);
      response = await t.request({ method: 'GET', url: new URL(location, 'http://gateway/docs/').pathname, key: null });
    }
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.body).toMatch(/swagger-ui/i);
  });

  it('an API route without a key is refused with a problem', async () => {
    const response = await t.request({ method: 'GET', url: '/api/v1/devices', key: null });
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});
