/**
 * Abuse limits: per-key rate limiting of the two intakes (429 problem+json with Retry-After,
 * RATE_LIMIT_PER_KEY, 0 = off), header size (431) and slow clients (408, the connection cut,
 * other clients served meanwhile) on a real listening server, and a flood of bad keys that
 * cannot fill the event log.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RejectionSampler } from '../../src/auth/rejection-sampler.js';
import { loadConfig } from '../../src/config/config.js';
import { ADMIN_KEY, createKey, createTestApp, type TestApp } from '../support/app.js';
import { expectProblem } from './profile.js';
import { parseAnswer, rawExchange } from './raw-http.js';

const LIMIT = 5;
let t: TestApp;
let port: number;
let webhookKey: string;
let otherWebhookKey: string;
let telephonyKey: string;

beforeAll(async () => {
  t = await createTestApp({ RATE_LIMIT_PER_KEY: String(LIMIT), MAX_HEADER_BYTES: '2048', REQUEST_TIMEOUT_MS: '600' });
  webhookKey = await createKey(t, 'webhook');
  otherWebhookKey = await createKey(t, 'webhook');
  telephonyKey = await createKey(t, 'telephony');
  await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'hall-smoke', type: 'sensor_smoke', msisdn: '+79161234567' } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  port = (t.app.server.address() as AddressInfo).port;
});
afterAll(async () => {
  await t.close();
});

let eventNumber = 0;
const event = (key: string) =>
  t.request({ method: 'POST', url: '/api/v1/webhooks/events', key, payload: { event_id: `rl-${++eventNumber}`, device_id: 'hall-smoke', event_type: 'test' } });
const report = (key: string) => t.request({ method: 'POST', url: '/api/v1/incoming-calls', key, payload: { call_id: 'rl-call', caller: '+74951234567', callee: '+79169990000' } });

describe('per-key rate limiting of the intakes (RATE_LIMIT_PER_KEY)', () => {
  it('defaults to 100 requests per second per key, and 0 is accepted to turn it off', () => {
    expect(loadConfig({}).RATE_LIMIT_PER_KEY).toBe(100);
    expect(loadConfig({ RATE_LIMIT_PER_KEY: '0' }).RATE_LIMIT_PER_KEY).toBe(0);
    expect(() => loadConfig({ RATE_LIMIT_PER_KEY: '-1' })).toThrow(/RATE_LIMIT_PER_KEY/);
  });

  it('answers the request over the limit with 429 problem+json and Retry-After; other keys and routes are not slowed', async () => {
    // One burst, sent at once, so that all of it falls in one window of a second.
    const burst = await Promise.all(Array.from({ length: LIMIT + 3 }, () => event(webhookKey)));
    const statuses = burst.map((response) => response.statusCode).sort();
    expect(statuses.filter((status) => status === 202).length).toBe(LIMIT);
    expect(statuses.filter((status) => status === 429).length).toBe(3);
    const refused = burst.find((response) => response.statusCode === 429)!;
    expect(expectProblem(refused)).toMatchObject({ code: 'rate_limited', status: 429 });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.headers['x-ratelimit-limit']).toBe(String(LIMIT));
    // Nothing of a refused event was recorded.
    const accepted = await t.database.storage.db.selectFrom('device_events').select('event_id').where('event_id', 'like', 'rl-%').execute();
    expect(accepted).toHaveLength(LIMIT);

    // Another key of the same vendor has its own budget; so does the call intake, and admin routes have none.
    expect((await event(otherWebhookKey)).statusCode).toBe(202);
    expect((await report(telephonyKey)).statusCode).toBe(202);
    for (let i = 0; i < LIMIT * 2; i++) expect((await t.request({ method: 'GET', url: '/api/v1/devices' })).statusCode).toBe(200);
  });

  it('limits the incoming-call intake per key the same way', async () => {
    const burst = await Promise.all(Array.from({ length: LIMIT + 2 }, () => report(telephonyKey)));
    const refused = burst.filter((response) => response.statusCode === 429);
    expect(refused.length).toBeGreaterThanOrEqual(2);
    expect(refused[0]!.headers['retry-after']).toMatch(/^\d+$/);
    expect(expectProblem(refused[0]!).code).toBe('rate_limited');
  });

  it('lets the key in again once Retry-After has passed', async () => {
    const burst = await Promise.all(Array.from({ length: LIMIT + 1 }, () => event(webhookKey)));
    const refused = burst.find((response) => response.statusCode === 429);
    const wait = refused ? Number(refused.headers['retry-after']) * 1000 : 0;
    await new Promise((resolve) => setTimeout(resolve, wait + 50));
    expect((await event(webhookKey)).statusCode).toBe(202);
  });

  it('is off with RATE_LIMIT_PER_KEY=0', async () => {
    const unlimited = await createTestApp({ RATE_LIMIT_PER_KEY: '0' }, { database: t.database });
    try {
      const burst = await Promise.all(Array.from({ length: 30 }, () => unlimited.request({ method: 'POST', url: '/api/v1/incoming-calls', key: telephonyKey, payload: { call_id: 'rl-off', caller: '+74951234567', callee: '+79169990000' } })));
      expect(burst.map((response) => response.statusCode).filter((status) => status !== 202)).toEqual([]);
    } finally {
      await unlimited.app.close();
    }
  });
});

describe('a flood of requests with bad keys cannot fill the event log', () => {
  it('answers every one 401 but writes one auth.rejected row per client and minute', async () => {
    const flood = await Promise.all(
      Array.from({ length: 200 }, (_, i) => t.request({ method: 'GET', url: '/api/v1/devices', key: `tig_flood${String(i).padStart(40, '0')}`, remoteAddress: '203.0.113.9' })),
    );
    expect(new Set(flood.map((response) => response.statusCode))).toEqual(new Set([401]));
    const rows = await t.database.storage.db.selectFrom('event_logs').select('details').where('type', '=', 'auth.rejected').execute();
    expect(rows.filter((row) => (row.details as { ip?: string }).ip === '203.0.113.9')).toHaveLength(1);
  });

  it('samples per client: the next row after a window says how many were left out; memory stays bounded', () => {
    let now = 0;
    const sampler = new RejectionSampler({ windowMs: 60_000, maxTracked: 3, now: () => now });
    expect(sampler.admit('a')).toEqual({ write: true, unloggedBefore: 0 });
    for (let i = 0; i < 99; i++) expect(sampler.admit('a')).toEqual({ write: false });
    now = 60_000;
    expect(sampler.admit('a')).toEqual({ write: true, unloggedBefore: 99 });
    // More clients at once than tracked: the rest share one window, so rows stay bounded.
    const written = Array.from({ length: 1000 }, (_, i) => sampler.admit(`client-${i}`)).filter((admission) => admission.write).length;
    expect(written).toBe(3);
  });
});

describe('header size and slow clients (a real listening server)', () => {
  it('answers headers over MAX_HEADER_BYTES with 431 problem+json and closes the connection', async () => {
    const answer = parseAnswer(await rawExchange(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(4096)}\r\n\r\n`));
    expect(answer.status).toBe(431);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 431, code: 'headers_too_large' });
    const fine = parseAnswer(await rawExchange(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(512)}\r\nConnection: close\r\n\r\n`));
    expect(fine.status).toBe(200);
  });

  it('cuts off a client dribbling its body with 408 problem+json, and serves others meanwhile', async () => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let closed = false;
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    const closedPromise = new Promise<void>((resolve) => socket.on('close', () => ((closed = true), resolve())));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const body = JSON.stringify({ device_id: 'slow-one', type: 'sensor_smoke', msisdn: '+79161234567' });
    socket.write(`POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nX-API-Key: ${ADMIN_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    // One byte every 50 ms: the whole body would take seconds.
    let sent = 0;
    const dribble = setInterval(() => {
      if (closed || sent >= body.length) return;
      socket.write(body[sent++]!);
    }, 50);
    try {
      // Meanwhile other clients are answered.
      for (let i = 0; i < 3; i++) {
        const other = await fetch(`http://127.0.0.1:${port}/healthz`);
        expect(other.status).toBe(200);
      }
      await closedPromise;
    } finally {
      clearInterval(dribble);
    }
    expect(sent).toBeLessThan(body.length);
    const answer = parseAnswer(received);
    expect(answer.status).toBe(408);
    expect(answer.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(answer.body)).toMatchObject({ status: 408, code: 'request_timeout' });
    expect((await t.request({ method: 'GET', url: '/api/v1/devices/slow-one' })).statusCode).toBe(404);
  });

  it('cuts off a client that never finishes its headers', async () => {
    const answer = await rawExchange(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ', 5_000);
    expect(parseAnswer(answer).status).toBe(408);
  });

  it('refuses a chunked body over BODY_LIMIT_BYTES with 413', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    const chunks = Array.from({ length: 20 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
    const answer = parseAnswer(
      await rawExchange(port, `POST /api/v1/devices HTTP/1.1\r\nHost: x\r\nX-API-Key: ${ADMIN_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunks}0\r\n\r\n`),
    );
    expect(answer.status).toBe(413);
  });
});
