/**
 * A scripted run through the real gateway (webhook intake, alarms calling through the mock
 * telephony's magic numbers, an incoming call announced on real HTTP speakers), then a scrape of
 * `GET /metrics` as Prometheus would do it: every counter must equal what happened, as the API and
 * the database tell it. Also: who may read /metrics; and the JSON process log, where one `grep`
 * on a correlation id must show a story whole, request lines and domain steps, as the event log
 * tells it. (One file, one database: the stories run after the scrape.)
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/clock.js';
import { MockTelephony } from '../../src/telephony/mock/mock-telephony.js';
import { ADMIN_KEY, createKey, createTestApp, type TestApp } from '../support/app.js';
import { SpeakerReceivers } from '../support/speaker-receivers.js';
import { jsonLogger } from '../support/test-logger.js';

const METRICS_TOKEN = 'scrape-token-0123456789abcdefghij';
const BUSY = '+79165550101';
const REJECTS = '+79165550103';
const RINGS = '+79165550106';
const ANSWERS = '+79161234567';
const SUBSCRIBER = '+79162223344';

let t: TestApp;
let clock: ManualClock;
let receivers: SpeakerReceivers;
let webhookKey: string;
let telephonyKey: string;
const log = jsonLogger();

/** `name{labels} value` lines of a Prometheus text exposition, by `name{sorted labels}`. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels = [...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map(([, name, value]) => `${name}=${value}`).sort();
    samples.set(`${match[1]}{${labels.join(',')}}`, Number(match[3]));
  }
  return samples;
}

function sample(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number | undefined {
  const key = `${name}{${Object.entries(labels).map(([label, value]) => `${label}=${value}`).sort().join(',')}}`;
  return samples.get(key);
}

async function scrape(app: TestApp = t, headers: Record<string, string> = { authorization: `Bearer ${METRICS_TOKEN}` }) {
  return app.request({ method: 'GET', url: '/metrics', key: null, headers });
}

/** Moves the manual clock in small steps, letting calls and notifications finish after each. */
async function run(ms: number, stepMs = 1_000): Promise<void> {
  const { dispatcher, notifier } = t.app.services;
  for (let elapsed = 0; elapsed <= ms; elapsed += stepMs) {
    if (elapsed > 0) clock.advance(stepMs);
    await dispatcher.settle();
    await notifier.settle();
  }
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
    await t.app.services.notifier.settle();
  }
}

function smoke(deviceId: string, eventId: string, eventType = 'smoke') {
  return t.request({ method: 'POST', url: '/api/v1/webhooks/events', key: webhookKey, payload: { event_id: eventId, device_id: deviceId, event_type: eventType } });
}

async function sensorWithRule(deviceId: string, to: string[]): Promise<void> {
  const device = await t.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: deviceId, type: 'sensor_smoke', msisdn: '+79160000001' } });
  expect(device.statusCode, device.body).toBe(201);
  const rule = await t.request({
    method: 'POST',
    url: '/api/v1/rules',
    payload: { name: `smoke at ${deviceId}`, event_type: 'smoke', device_id: deviceId, action: { type: 'call', to, message: 'Smoke detected', attempts: 1, retry_delay_s: 1 } },
  });
  expect(rule.statusCode, rule.body).toBe(201);
}

async function speaker(name: string, mode: Parameters<SpeakerReceivers['add']>[2]) {
  const created = await t.request({
    method: 'POST',
    url: '/api/v1/devices',
    payload: { device_id: name, type: 'speaker', msisdn: SUBSCRIBER, endpoint: `${receivers.baseUrl}/speakers/${name}` },
  });
  expect(created.statusCode, created.body).toBe(201);
  return receivers.add(name, created.json<{ signing_secret: string }>().signing_secret, mode);
}

beforeAll(async () => {
  // Near the real time: speakers check the signed webhook-timestamp against their own clock.
  clock = new ManualClock(new Date().toISOString());
  t = await createTestApp({ METRICS_TOKEN }, { clock, telephony: new MockTelephony({ clock }), instanceId: 'metrics-test', logger: log.logger });
  receivers = await SpeakerReceivers.start();
  webhookKey = await createKey(t, 'webhook');
  telephonyKey = await createKey(t, 'telephony');
});
afterAll(async () => {
  await t.close();
  await receivers.close();
});

describe('GET /metrics after a scripted run', () => {
  let samples: Map<string, number>;
  const alarmIds: string[] = [];

  beforeAll(async () => {
    await sensorWithRule('hall-smoke', [BUSY, ANSWERS]); // busy, then answered and confirmed: resolved
    await sensorWithRule('kitchen-smoke', [REJECTS]); // declined: exhausted
    await sensorWithRule('garage-smoke', [RINGS]); // rings until smoke_cleared cancels it
    const living = await speaker('living-speaker', { kind: 'ok' });
    const gone = await speaker('gone-speaker', { kind: 'status', status: 410 });
    const codes: number[] = [];
    const send = async (deviceId: string, eventId: string, eventType = 'smoke') => {
      const response = await smoke(deviceId, eventId, eventType);
      codes.push(response.statusCode);
      if (response.statusCode === 202 && response.json<{ status: string }>().status === 'accepted') alarmIds.push(...response.json<{ alarm_ids: string[] }>().alarm_ids);
    };
    await send('hall-smoke', 'evt-1'); // accepted, alarm started
    await send('hall-smoke', 'evt-1'); // duplicate
    await send('kitchen-smoke', 'evt-2'); // accepted, alarm started
    await send('nobody-smoke', 'evt-3'); // unknown device
    await send('living-speaker', 'evt-4'); // a speaker reports no smoke: rejected
    await send('hall-smoke', 'evt-5'); // accepted, suppressed (its alarm is active)
    await send('garage-smoke', 'evt-6'); // accepted, alarm started
    await run(1_000);
    await send('garage-smoke', 'evt-7', 'smoke_cleared'); // accepted, alarm canceled
    expect(codes).toEqual([202, 202, 202, 404, 422, 202, 202, 202]);
    await run(15_000);


    const report = async (state: string) => {
      const response = await t.request({
        method: 'POST',
        url: '/api/v1/incoming-calls',
        key: telephonyKey,
        payload: { call_id: 'call-metrics-1', caller: '+74951234567', callee: SUBSCRIBER, state },
      });
      expect(response.statusCode, response.body).toBe(202);
    };
    await report('ringing');
    await waitFor(() => living.delivered.length === 1 && gone.requests.length === 1, 'the ringing notifications');
    await report('answered');
    await waitFor(() => living.delivered.length === 2, 'the answered notification');
    await report('ended');
    await waitFor(() => living.delivered.length === 3, 'the ended notification');
    await run(0);
    const scraped = await scrape();
    expect(scraped.statusCode, scraped.body).toBe(200);
    expect(scraped.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    samples = parseExposition(scraped.body);
  });

  it('counts device events by type and outcome', () => {
    const events = (event_type: string, outcome: string) => sample(samples, 'tig_device_events_total', { event_type, outcome });
    expect(events('smoke', 'accepted')).toBe(4);
    expect(events('smoke_cleared', 'accepted')).toBe(1);
    expect(events('smoke', 'duplicate')).toBe(1);
    expect(events('smoke', 'unknown_device')).toBe(1);
    expect(events('smoke', 'rejected')).toBe(1);
    expect(events('test', 'accepted')).toBe(0);
  });

  it('counts alarms by outcome, as the alarms themselves ended', async () => {
    const statuses = await Promise.all(alarmIds.map(async (id) => (await t.request({ method: 'GET', url: `/api/v1/alarms/${id}` })).json<{ status: string }>().status));
    expect(statuses.sort()).toEqual(['canceled', 'exhausted', 'resolved']);
    const alarms = (outcome: string) => sample(samples, 'tig_alarms_total', { outcome });
    expect(alarms('started')).toBe(3);
    expect(alarms('suppressed')).toBe(1);
    expect(alarms('resolved')).toBe(1);
    expect(alarms('exhausted')).toBe(1);
    expect(alarms('canceled')).toBe(1);
  });

  it('counts calls by final status and hangup cause, exactly as the calls table records them', async () => {
    const calls = await t.database.storage.db.selectFrom('calls').select(['status', 'hangup_cause']).execute();
    const expected = new Map<string, number>();
    for (const call of calls) {
      const key = `${call.status}/${call.hangup_cause ?? 'none'}`;
      expected.set(key, (expected.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(expected)).toEqual({
      'busy/USER_BUSY': 1,
      'completed/NORMAL_CLEARING': 1,
      'rejected/CALL_REJECTED': 1,
      'canceled/ORIGINATOR_CANCEL': 1,
    });
    for (const [key, count] of expected) {
      const [status, hangup_cause] = key.split('/') as [string, string];
      expect(sample(samples, 'tig_calls_total', { status, hangup_cause }), key).toBe(count);
    }
    const counted = [...samples].filter(([name]) => name.startsWith('tig_calls_total{')).reduce((sum, [, value]) => sum + value, 0);
    expect(counted).toBe(calls.length);
    expect(sample(samples, 'tig_calls_dialed_total')).toBe(4);
    expect(sample(samples, 'tig_calls_in_flight')).toBe(0);
  });

  it('counts incoming-call states and speaker notifications by transport and outcome, with their latency', () => {
    for (const state of ['ringing', 'answered', 'ended']) expect(sample(samples, 'tig_incoming_calls_total', { state, source: 'api' }), state).toBe(1);
    const notifications = (outcome: string) => sample(samples, 'tig_notifications_total', { transport: 'http', outcome });
    expect(notifications('delivered')).toBe(3);
    expect(notifications('gone')).toBe(1);
    expect(notifications('retry')).toBe(0);
    expect(notifications('expired')).toBe(0);
    expect(sample(samples, 'tig_notifications_total', { transport: 'mqtt', outcome: 'delivered' })).toBe(0);
    // The clock stood still while they were delivered: every latency falls in the first bucket.
    expect(sample(samples, 'tig_notification_delivery_seconds_count', { transport: 'http' })).toBe(3);
    expect(sample(samples, 'tig_notification_delivery_seconds_bucket', { transport: 'http', le: '0.01' })).toBe(3);
  });

  it('times HTTP requests by route pattern and status, never by raw URL', () => {
    const requests = (route: string, status_code: string, method = 'POST') =>
      sample(samples, 'tig_http_request_duration_seconds_count', { method, route, status_code });
    expect(requests('/api/v1/webhooks/events', '202')).toBe(6);
    expect(requests('/api/v1/webhooks/events', '404')).toBe(1);
    expect(requests('/api/v1/webhooks/events', '422')).toBe(1);
    expect(requests('/api/v1/incoming-calls', '202')).toBe(3);
    expect(requests('/api/v1/alarms/:id', '200', 'GET')).toBe(undefined); // read after the scrape
    const routes = [...samples.keys()].filter((key) => key.startsWith('tig_http_request_duration_seconds_count{'));
    expect(routes.filter((key) => /evt-|call-metrics|hall-smoke/.test(key))).toEqual([]);
  });

  it('reports the switch, the database, the job backlog and the process', () => {
    expect(sample(samples, 'tig_telephony_up', { telephony: 'mock' })).toBe(1);
    expect(sample(samples, 'tig_telephony_reconnects_total')).toBe(0);
    expect(sample(samples, 'tig_database_up')).toBe(1);
    expect(sample(samples, 'tig_jobs_due', { queue: 'calls' })).toBe(0);
    expect(sample(samples, 'tig_jobs_due', { queue: 'notifications' })).toBe(0);
    expect(sample(samples, 'tig_jobs_oldest_due_seconds', { queue: 'calls' })).toBe(0);
    const max = sample(samples, 'tig_db_pool_connections', { state: 'max' });
    expect(max).toBe(t.database.storage.kind === 'pglite' ? 1 : 5);
    expect(sample(samples, 'tig_db_pool_waiting')).toBeGreaterThanOrEqual(0);
    expect([...samples.keys()].some((key) => key.startsWith('tig_info{') && key.includes('instance_id=metrics-test'))).toBe(true);
    expect(sample(samples, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(samples, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('shows a job waiting past its due time in the backlog gauges', async () => {
    const now = clock.now();
    await t.database.storage.db
      .insertInto('notifications')
      .values({
        id: randomUUID(),
        call_id: 'call-metrics-1',
        device_id: 'gone-speaker',
        type: 'incoming_call.ended',
        step: 3,
        endpoint: `${receivers.baseUrl}/speakers/gone-speaker`,
        payload: JSON.stringify({ type: 'incoming_call.ended' }),
        status: 'pending',
        due_at: new Date(now.getTime() - 90_000),
        expires_at: new Date(now.getTime() + 60_000),
        created_at: new Date(now.getTime() - 90_000),
        correlation_id: 'backlog-test',
      })
      .execute();
    const backlog = parseExposition((await scrape()).body);
    expect(sample(backlog, 'tig_jobs_due', { queue: 'notifications' })).toBe(1);
    expect(sample(backlog, 'tig_jobs_oldest_due_seconds', { queue: 'notifications' })).toBe(90);
    await t.database.storage.db.updateTable('notifications').set({ status: 'superseded' }).where('correlation_id', '=', 'backlog-test').execute();
  });
});

describe('who may read /metrics', () => {
  it('refuses a scrape without credentials, with a wrong token, or with a key of another role', async () => {
    expect((await scrape(t, {})).statusCode).toBe(401);
    expect((await scrape(t, { authorization: `Bearer ${METRICS_TOKEN}x` })).statusCode).toBe(401);
    expect((await scrape(t, { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}` })).statusCode).toBe(401);
    expect((await scrape(t, { 'x-api-key': METRICS_TOKEN })).statusCode).toBe(401); // the token is not an API key
    const refused = await scrape(t, { 'x-api-key': webhookKey });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it('accepts the token or an admin key', async () => {
    expect((await scrape(t, { authorization: `Bearer ${METRICS_TOKEN}` })).statusCode).toBe(200);
    expect((await scrape(t, { 'x-api-key': ADMIN_KEY })).statusCode).toBe(200);
  });

  it('without METRICS_TOKEN, needs an admin key', async () => {
    const plain = await createTestApp({}, { database: t.database, clock, telephony: new MockTelephony({ clock }), instanceId: 'metrics-test-2' });
    try {
      expect((await scrape(plain, { authorization: `Bearer ${METRICS_TOKEN}` })).statusCode).toBe(401);
      expect((await scrape(plain, {})).statusCode).toBe(401);
      expect((await scrape(plain, { 'x-api-key': ADMIN_KEY })).statusCode).toBe(200);
    } finally {
      await plain.app.close();
    }
  });
});

describe('the JSON process log, grepped for a correlation id', () => {
  /** The event-log rows of a story, oldest first. */
  async function eventLogTypes(correlationId: string): Promise<string[]> {
    const rows = await t.database.storage.db.selectFrom('event_logs').select('type').where('correlation_id', '=', correlationId).orderBy('id').execute();
    return rows.map((row) => row.type);
  }
  const steps = (lines: Record<string, unknown>[]) => lines.filter((line) => typeof line.step === 'string').map((line) => line.step as string);
  /** Each step's details, as the process log has them and as the event log has them (some rows are written by SQL, the lines by the code). */
  const stepDetails = (lines: Record<string, unknown>[]) => lines.filter((line) => typeof line.step === 'string').map((line) => [line.step, line.details]);
  async function eventLogDetails(correlationId: string): Promise<unknown[][]> {
    const rows = await t.database.storage.db.selectFrom('event_logs').select(['type', 'details']).where('correlation_id', '=', correlationId).orderBy('id').execute();
    return rows.map((row) => [row.type, row.details]);
  }
  const messages = (lines: Record<string, unknown>[]) => lines.map((line) => line.msg as string);

  it('shows a smoke event from request to resolved alarm, every step the event log has, and the duplicate', async () => {
    await sensorWithRule('story-smoke', [ANSWERS]);
    const story = `story-${randomUUID()}`;
    const first = await t.request({
      method: 'POST',
      url: '/api/v1/webhooks/events',
      key: webhookKey,
      headers: { 'x-request-id': story },
      payload: { event_id: 'evt-story-1', device_id: 'story-smoke', event_type: 'smoke' },
    });
    expect(first.statusCode, first.body).toBe(202);
    await run(12_000);
    const duplicateRequest = `dup-${randomUUID()}`;
    const duplicate = await t.request({
      method: 'POST',
      url: '/api/v1/webhooks/events',
      key: webhookKey,
      headers: { 'x-request-id': duplicateRequest },
      payload: { event_id: 'evt-story-1', device_id: 'story-smoke', event_type: 'smoke' },
    });
    expect(duplicate.json<{ status: string }>().status).toBe('duplicate');

    const lines = log.grep(story);
    // The request, received and answered, with its route and correlation id.
    expect(messages(lines).slice(0, 1)).toEqual(['request received']);
    const answered = lines.filter((line) => line.msg === 'request answered');
    expect(answered.map((line) => [line.reqId, line.correlationId, line.route, (line.res as { statusCode: number }).statusCode])).toEqual([
      [story, story, '/api/v1/webhooks/events', 202],
      // The duplicate's own request carries the story it belongs to.
      [duplicateRequest, story, '/api/v1/webhooks/events', 202],
    ]);
    // Every domain step, in the order the event log has them.
    const expected = await eventLogTypes(story);
    expect(expected).toEqual(expect.arrayContaining(['event.received', 'rule.matched', 'alarm.started', 'call.queued', 'call.dialing', 'call.ringing', 'call.answered', 'call.acknowledged', 'alarm.resolved', 'call.completed', 'event.duplicate']));
    expect(steps(lines)).toEqual(expected);
    expect(stepDetails(lines)).toEqual(await eventLogDetails(story));
    for (const line of lines) expect(line.level).toBeGreaterThanOrEqual(30);
  });

  it('shows an incoming call from its three reports to every notification delivered', async () => {
    const kitchen = await speaker('story-speaker', { kind: 'ok' });
    const story = `story-${randomUUID()}`;
    const reportIds: string[] = [];
    for (const state of ['ringing', 'answered', 'ended']) {
      const requestId = state === 'ringing' ? story : `${state}-${randomUUID()}`;
      reportIds.push(requestId);
      const response = await t.request({
        method: 'POST',
        url: '/api/v1/incoming-calls',
        key: telephonyKey,
        headers: { 'x-request-id': requestId },
        payload: { call_id: 'call-story-1', caller: '+74951234567', callee: SUBSCRIBER, state },
      });
      expect(response.statusCode, response.body).toBe(202);
      await waitFor(() => kitchen.delivered.length === reportIds.length, `the ${state} notification`);
    }
    await run(0);

    const lines = log.grep(story);
    expect(messages(lines)[0]).toBe('request received');
    expect(lines.filter((line) => line.msg === 'request answered').map((line) => [line.reqId, line.correlationId, line.route])).toEqual(
      reportIds.map((requestId) => [requestId, story, '/api/v1/incoming-calls']),
    );
    const expected = await eventLogTypes(story);
    expect(expected.filter((type) => type === 'notification.sent')).toHaveLength(6); // two speakers on the number: living-speaker and story-speaker
    expect(expected).toEqual(expect.arrayContaining(['incoming_call.received', 'incoming_call.answered', 'incoming_call.ended']));
    expect(steps(lines)).toEqual(expected);
    expect(stepDetails(lines)).toEqual(await eventLogDetails(story));
    // Lines carry no secret: the speakers' signing secrets and the keys never appear in the log.
    expect(log.raw.some((line) => line.includes(kitchen.secret) || line.includes(webhookKey) || line.includes(ADMIN_KEY))).toBe(false);
  });
});
