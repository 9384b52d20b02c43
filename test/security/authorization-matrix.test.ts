/**
 * Every route × every kind of caller, generated from the app's own route table (`app.routeTable`,
 * filled as routes are added), so a new route is in the matrix the moment it exists:
 *   no key, a malformed key, a well-formed but unknown key, a revoked key -> 401 problem
 *   a key whose role the route does not allow                            -> 403 problem
 *   a key whose role it allows (and the env ADMIN_API_KEY)                -> 2xx
 * Public routes (health, docs) answer 2xx (or a docs redirect) whatever key is sent. Both key headers are exercised.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteEntry } from '../../src/auth/authenticate.js';
import { roles, type Role } from '../../src/auth/roles.js';
import { ADMIN_KEY, createKey, createTestApp, type TestApp } from '../support/app.js';
import { expectProblem, injectBounded } from './profile.js';
import { Fixtures, sampleFor, type Sample } from './route-samples.js';

type Caller =
  | { name: string; expect: 'unauthorized'; header: Record<string, string> }
  | { name: string; expect: 'role'; role: Role; header: Record<string, string> };

let t: TestApp;
let fixtures: Fixtures;
let routes: RouteEntry[];
const callers: Caller[] = [];

beforeAll(async () => {
  t = await createTestApp();
  fixtures = new Fixtures(t);
  routes = t.app.routeTable;
  const keys = Object.fromEntries(await Promise.all(roles.map(async (role) => [role, await createKey(t, role, `matrix ${role}`)] as const))) as Record<Role, string>;
  const revokedAdmin = (await t.request({ method: 'POST', url: '/api/v1/api-keys', payload: { role: 'admin', name: 'to revoke' } })).json<{ id: number; key: string }>();
  expect((await t.request({ method: 'DELETE', url: `/api/v1/api-keys/${revokedAdmin.id}` })).statusCode).toBe(204);
  callers.push(
    { name: 'no key', expect: 'unauthorized', header: {} },
    { name: 'a malformed key (spaces, too short)', expect: 'unauthorized', header: { 'x-api-key': 'not a key' } },
    { name: 'a malformed Bearer header', expect: 'unauthorized', header: { authorization: 'Bearer' } },
    { name: 'an unknown key of the right shape', expect: 'unauthorized', header: { 'x-api-key': `${keys.admin.slice(0, -4)}AAAA` } },
    { name: 'a revoked admin key', expect: 'unauthorized', header: { authorization: `Bearer ${revokedAdmin.key}` } },
    { name: 'ADMIN_API_KEY', expect: 'role', role: 'admin', header: { 'x-api-key': ADMIN_KEY } },
    ...roles.map((role): Caller => ({ name: `a ${role} key`, expect: 'role', role, header: { 'x-api-key': keys[role] } })),
    ...roles.map((role): Caller => ({ name: `a ${role} key as Bearer`, expect: 'role', role, header: { authorization: `Bearer ${keys[role]}` } })),
  );
});
afterAll(async () => {
  await t.close();
});

function allowed(route: RouteEntry, caller: Caller): boolean {
  return route.public || (caller.expect === 'role' && route.allow.includes(caller.role));
}

/** Sends a route's sample as a caller: a fresh sample when the call may change something, else `shared`. */
async function call(route: RouteEntry, caller: Caller, shared: Sample): Promise<{ response: LightMyRequestResponse; request: string }> {
  const sample = allowed(route, caller) && route.method !== 'GET' && route.method !== 'HEAD' ? await sampleFor(route.method, route.url)!(fixtures) : shared;
  const response = await injectBounded(t.app, {
    method: route.method,
    url: sample.url,
    headers: caller.header,
    ...(sample.payload ? { payload: sample.payload } : {}),
  });
  return { response, request: `${route.method} ${sample.url} with ${caller.name}` };
}

describe('authorization matrix (generated from the route table)', () => {
  it('covers every route the app has, the intakes and the admin API among them', () => {
    const names = routes.map((route) => `${route.method} ${route.url}`);
    expect(names).toEqual(expect.arrayContaining(['POST /api/v1/webhooks/events', 'POST /api/v1/incoming-calls', 'DELETE /api/v1/api-keys/:id', 'GET /healthz']));
    expect(routes.filter((route) => !route.public).length).toBeGreaterThanOrEqual(30);
    const missing = routes.filter((route) => !sampleFor(route.method, route.url)).map((route) => `${route.method} ${route.url}`);
    expect(missing, 'routes without a sample request in test/security/route-samples.ts').toEqual([]);
  });

  it('answers every route × caller as its declared roles say', async () => {
    let checked = 0;
    for (const route of routes) {
      const build = sampleFor(route.method, route.url);
      if (!build) throw new Error(`No sample request for ${route.method} ${route.url}: add one to test/security/route-samples.ts`);
      const shared = await build(fixtures);
      for (const caller of callers) {
        const { response, request } = await call(route, caller, shared);
        const where = `${request}: ${response.statusCode} ${response.body.slice(0, 200)}`;
        if (route.public) {
          // (the docs UI answers some of its pages with a redirect)
          expect(response.statusCode, where).toBeGreaterThanOrEqual(200);
          expect(response.statusCode, where).toBeLessThan(400);
        } else if (caller.expect === 'unauthorized') {
          expect(response.statusCode, where).toBe(401);
          expect(response.headers['www-authenticate'], where).toContain('Bearer');
          if (route.method !== 'HEAD') expect(expectProblem(response, where).code, where).toBe('unauthorized');
        } else if (route.allow.includes(caller.role)) {
          expect(response.statusCode, where).toBeGreaterThanOrEqual(200);
          expect(response.statusCode, where).toBeLessThan(300);
        } else {
          expect(response.statusCode, where).toBe(403);
          if (route.method !== 'HEAD') expect(expectProblem(response, where).code, where).toBe('forbidden');
        }
        checked++;
      }
    }
    console.log(`authorization matrix: ${routes.length} routes × ${callers.length} callers = ${checked} requests, each as declared`);
  });
});
