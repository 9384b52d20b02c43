/**
 * Property-based fuzzing of every route of the route table (fast-check): hostile bodies, query
 * strings, path parameters and headers, derived from each route's own schemas (see
 * ./hostile-requests.ts), sent with a valid admin key so they reach validation and the services.
 * Every answer must be a real status below 500, every 4xx a complete application/problem+json;
 * afterwards the gateway is healthy and still does its job.
 *
 * Cases per route: 2,000 in the long profile (`npm run test:security`), 200 in CI (50 for the
 * HEAD twins of GET routes, which run the same hooks and handler). The route
 * layer is the same on both databases (PGlite is PostgreSQL compiled to WebAssembly, so text and
 * JSON are refused or stored alike): the postgres project runs a smaller sample (20 per route)
 * to catch anything only a server-side PostgreSQL does, and says so.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteEntry } from '../../src/auth/authenticate.js';
import { ADMIN_KEY, createTestApp, type TestApp } from '../support/app.js';
import { onPostgres } from '../support/database.js';
import { expectWellFormed, injectBounded, longProfile, profileName } from './profile.js';
import { hostileRequests, type HostileRequest } from './hostile-requests.js';

const casesPerRoute = onPostgres ? (longProfile ? 200 : 20) : longProfile ? 2_000 : 200;
/** HEAD routes are Fastify's automatic twins of the GET routes (same hooks, same handler): fewer in CI. */
const casesPerHeadRoute = longProfile ? casesPerRoute : Math.ceil(casesPerRoute / 4);
const signingSecret = `whsec_${Buffer.from('security-fuzz-signing-secret-0123456789').toString('base64')}`;
const signer = new Webhook(signingSecret);

let t: TestApp;
let routes: RouteEntry[];
const figures = { cases: 0, byStatus: new Map<number, number>(), fiveHundreds: 0, startedAt: Date.now() };

beforeAll(async () => {
  if (onPostgres) console.log(`route fuzzing on postgres: ${casesPerRoute} cases per route (the full run is on pglite; the route layer is the same on both)`);
  // No speaker endpoint can be registered (no private address allowed, and only private or
  // refused ones are generated): fuzzing never sends a notification anywhere. No rate limit, so
  // every case reaches the route.
  t = await createTestApp({ OUTBOUND_ALLOW_HOSTS: '', RATE_LIMIT_PER_KEY: '0', WEBHOOK_SIGNING_SECRET: signingSecret });
  routes = t.app.routeTable.filter((route) => !route.url.startsWith('/docs/static/'));
  for (const deviceId of ['fuzz-sensor', 'target']) {
    await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: deviceId, type: 'sensor_smoke', msisdn: '+79161234567' } });
  }
});

afterAll(async () => {
  const seconds = ((Date.now() - figures.startedAt) / 1000).toFixed(0);
  const statuses = [...figures.byStatus].sort(([a], [b]) => a - b).map(([status, count]) => `${status}×${count}`).join(' ');
  const summary = `route fuzzing (${profileName} profile, ${process.env.TEST_DB}): ${figures.cases} cases over ${routes.length} routes (${casesPerRoute} each, HEAD ${casesPerHeadRoute}) in ${seconds} s; 5xx seen: ${figures.fiveHundreds}; statuses: ${statuses}`;
  console.log(summary);
  mkdirSync('.test-results', { recursive: true });
  writeFileSync(`.test-results/security-fuzz-${profileName}-${process.env.TEST_DB}.json`, `${JSON.stringify({ profile: profileName, database: process.env.TEST_DB, routes: routes.length, casesPerRoute, cases: figures.cases, fiveHundreds: figures.fiveHundreds, statuses: Object.fromEntries(figures.byStatus), seconds: Number(seconds) })}\n`);
  await t.close();
});

function signedHeaders(request: HostileRequest): Record<string, string> {
  if (Object.keys(request.headers).some((name) => name.startsWith('webhook-'))) return {};
  const id = `msg_${randomUUID()}`;
  const now = new Date();
  const body = request.payload === undefined ? '' : Buffer.isBuffer(request.payload) ? request.payload.toString('utf8') : request.payload;
  return { 'webhook-id': id, 'webhook-timestamp': String(Math.floor(now.getTime() / 1000)), 'webhook-signature': signer.sign(id, now, body) };
}

async function send(request: HostileRequest): Promise<void> {
  const signing = request.method === 'POST' && request.url.startsWith('/api/v1/webhooks/events') ? signedHeaders(request) : {};
  const response = await injectBounded(t.app, {
    method: request.method,
    url: request.url,
    headers: { 'x-api-key': ADMIN_KEY, ...request.headers, ...signing },
    ...(request.payload !== undefined ? { payload: request.payload } : {}),
  });
  figures.cases++;
  figures.byStatus.set(response.statusCode, (figures.byStatus.get(response.statusCode) ?? 0) + 1);
  if (response.statusCode >= 500) figures.fiveHundreds++;
  const shown = request.payload === undefined ? '' : ` body ${JSON.stringify(String(request.payload).slice(0, 300))}`;
  expectWellFormed(response, `${request.method} ${request.url.slice(0, 300)} headers ${JSON.stringify(request.headers)}${shown}`);
}

describe(`every route answers hostile input with a well-formed status, never 5xx (${casesPerRoute} cases per route)`, () => {
  it('fuzzes routes taken from the route table, the intakes among them', () => {
    expect(routes.map((route) => `${route.method} ${route.url}`)).toEqual(expect.arrayContaining(['POST /api/v1/webhooks/events', 'POST /api/v1/incoming-calls', 'PATCH /api/v1/rules/:id']));
  });

  it('answers every case of every route with 2xx-4xx, each 4xx as problem+json', { timeout: longProfile ? 3_600_000 : 600_000 }, async () => {
    for (const route of routes) {
      await fc.assert(fc.asyncProperty(hostileRequests(route), send), { numRuns: route.method === 'HEAD' ? casesPerHeadRoute : casesPerRoute, endOnFailure: true });
    }
    expect(figures.fiveHundreds).toBe(0);
  });

  it('is healthy afterwards and still registers a device and accepts a signed event', async () => {
    expect((await t.request({ method: 'GET', url: '/healthz', key: null })).statusCode).toBe(200);
    expect((await t.request({ method: 'GET', url: '/readyz', key: null })).statusCode).toBe(200);
    const device = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'after-fuzzing', type: 'sensor_smoke', msisdn: '+79161234567' } });
    expect(device.statusCode, device.body).toBe(201);
    const body = JSON.stringify({ event_id: 'after-fuzzing-1', device_id: 'after-fuzzing', event_type: 'test' });
    const event = await t.request({
      method: 'POST',
      url: '/api/v1/webhooks/events',
      payload: body,
      headers: { 'content-type': 'application/json', ...signedHeaders({ method: 'POST', url: '', headers: {}, payload: body }) },
    });
    expect(event.statusCode, event.body).toBe(202);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});
