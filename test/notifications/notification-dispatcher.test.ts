import { randomUUID } from 'node:crypto';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/clock/clock.js';
import { generateSigningSecret } from '../../src/devices/devices-service.js';
import { closeHttpAgent, deliverHttp } from '../../src/notifications/http-delivery.js';
import { MqttPublisher } from '../../src/notifications/mqtt-delivery.js';
import { NotificationDispatcher, type NotificationDispatcherOptions } from '../../src/notifications/notification-dispatcher.js';
import { OutboundPolicy } from '../../src/notifications/outbound-policy.js';
import { insertRingingCalls } from '../../src/incoming-calls/incoming-calls-repository.js';
import type { Db } from '../../src/storage/database.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { closedPort, startTestBroker, type TestBroker } from '../support/mqtt-broker.js';
import { SpeakerReceivers, type ReceiverMode, type SpeakerReceiver } from '../support/speaker-receivers.js';

const INSTANCE = 'test-gateway';
const steps = { 'incoming_call.ringing': 1, 'incoming_call.answered': 2, 'incoming_call.ended': 3 } as const;
type NotificationType = keyof typeof steps;

let database: TestDatabase;
let db: Db;
let receivers: SpeakerReceivers;
let broker: TestBroker;
const policy = new OutboundPolicy('127.0.0.1');
let mqttPublisher: MqttPublisher;
let dispatcher: NotificationDispatcher | undefined;
const loggedErrors: unknown[] = [];
const logger = { info() {}, warn() {}, error: (obj: object) => void loggedErrors.push(obj) };
let counter = 0;

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.storage.db;
  receivers = await SpeakerReceivers.start();
  broker = await startTestBroker();
  mqttPublisher = new MqttPublisher({ policy, reconnectPeriodMs: 200, connectTimeoutMs: 1_000 });
});

afterEach(async () => {
  await dispatcher?.stop();
  dispatcher = undefined;
  receivers.releaseHeld();
  // Whatever a test left unsettled must not be picked up by the next one.
  await db.updateTable('notifications').set({ status: 'superseded' }).where('status', 'in', ['pending', 'delivering']).execute();
  expect(loggedErrors).toEqual([]);
});

afterAll(async () => {
  await mqttPublisher.close();
  await broker.close();
  await closeHttpAgent(policy);
  await receivers.close();
  await database.close();
});

function newDispatcher(options: Partial<NotificationDispatcherOptions> = {}, http = deliverHttp): NotificationDispatcher {
  dispatcher = new NotificationDispatcher(
    { db, clock: systemClock, instanceId: INSTANCE, logger, policy, http, mqtt: mqttPublisher },
    { concurrency: 8, timeoutMs: 1_000, pollIntervalMs: 60_000, retry: { baseMs: 50, maxMs: 200 }, ...options },
  );
  return dispatcher;
}

async function addCall(callee = '+79161234567'): Promise<{ callId: string; callee: string; correlationId: string }> {
  const callId = `call-${++counter}-${randomUUID().slice(0, 8)}`;
  const correlationId = randomUUID();
  const now = new Date();
  await db
    .insertInto('incoming_calls')
    .values({ call_id: callId, caller: '+79165550199', callee, state: 'ringing', source: 'api', correlation_id: correlationId, received_at: now, ringing_at: now })
    .execute();
  return { callId, callee, correlationId };
}

async function addSpeaker(mode: ReceiverMode = { kind: 'ok' }, msisdn = '+79161234567'): Promise<{ deviceId: string; receiver: SpeakerReceiver }> {
  const deviceId = `speaker-${++counter}`;
  const receiver = receivers.add(deviceId, generateSigningSecret(), mode);
  await addDevice(deviceId, receiver.url, receiver.secret, msisdn);
  return { deviceId, receiver };
}

async function addDevice(deviceId: string, endpoint: string, secret: string | null, msisdn = '+79161234567'): Promise<void> {
  await db
    .insertInto('devices')
    .values({ device_id: deviceId, type: 'speaker', msisdn, endpoint, signing_secret: secret, metadata: '{}', name: deviceId })
    .execute();
}

async function addNotification(
  call: { callId: string; callee: string; correlationId: string },
  deviceId: string,
  endpoint: string,
  type: NotificationType = 'incoming_call.ringing',
  options: { ttlMs?: number; status?: string; claimedBy?: string | null; attempts?: number; expiresAt?: Date } = {},
): Promise<string> {
  const id = randomUUID();
  const now = new Date();
  await db
    .insertInto('notifications')
    .values({
      id,
      call_id: call.callId,
      device_id: deviceId,
      type,
      step: steps[type],
      endpoint,
      payload: JSON.stringify({ id, type, call_id: call.callId, caller: '+79165550199', callee: call.callee, at: now.toISOString() }),
      status: options.status ?? 'pending',
      attempts: options.attempts ?? 0,
      claimed_by: options.claimedBy ?? null,
      due_at: now,
      expires_at: options.expiresAt ?? new Date(now.getTime() + (options.ttlMs ?? 10_000)),
      created_at: now,
      correlation_id: call.correlationId,
    })
    .execute();
  return id;
}

async function notification(id: string) {
  return db.selectFrom('notifications').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
}

async function logOf(correlationId: string) {
  return db.selectFrom('event_logs').selectAll().where('correlation_id', '=', correlationId).orderBy('id').execute();
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 5_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function statusIs(id: string, status: string, timeoutMs = 5_000) {
  return waitFor(`notification ${id} to be ${status}`, async () => {
    const row = await notification(id);
    return row.status === status ? row : undefined;
  }, timeoutMs);
}

describe('NotificationDispatcher', () => {
  it('starts the first attempt at once when kicked (the poll is a minute away): a correctly signed ringing arrives', async () => {
    const d = newDispatcher();
    await d.start();
    await d.settle();
    const call = await addCall();
    const { deviceId, receiver } = await addSpeaker();
    const id = await addNotification(call, deviceId, receiver.url);
    d.kick();
    const arrived = await waitFor('the ringing', () => receiver.delivered[0]);
    expect(receiver.badSignatures).toBe(0);
    expect(arrived.webhookId).toBe(id);
    expect(arrived.body).toMatchObject({ id, type: 'incoming_call.ringing', call_id: call.callId });

    const row = await statusIs(id, 'delivered');
    expect(row).toMatchObject({ attempts: 1, claimed_by: INSTANCE, last_error: null });
    expect(row.delivered_at).toBeInstanceOf(Date);
    expect(row.latency_ms).toBeGreaterThanOrEqual(0);
    const log = await logOf(call.correlationId);
    expect(log.map((entry) => entry.type)).toEqual(['notification.sent']);
    expect(log[0]).toMatchObject({ status: 'ok', device_id: deviceId, msisdn: call.callee });
    expect(log[0]!.details).toMatchObject({ notification_id: id, attempt: 1, transport: 'http', status_code: 200, latency_ms: row.latency_ms });
  });

  it('retries with backoff: a receiver failing twice gets it on the third attempt', async () => {
    const d = newDispatcher();
    await d.start();
    const call = await addCall();
    const { deviceId, receiver } = await addSpeaker({ kind: 'fail', times: 2 });
    const id = await addNotification(call, deviceId, receiver.url);
    d.kick();
    const row = await statusIs(id, 'delivered');
    expect(row.attempts).toBe(3);
    expect(receiver.requests.map((request) => request.answered)).toEqual([503, 503, 200]);
    expect(new Set(receiver.requests.map((request) => request.webhookId))).toEqual(new Set([id]));
    const log = await logOf(call.correlationId);
    expect(log.map((entry) => entry.type)).toEqual(['notification.failed', 'notification.failed', 'notification.sent']);
    expect(log[0]!.details).toMatchObject({ reason: 'HTTP 503', attempt: 1, will_retry: true });
    expect(log[1]!.details).toMatchObject({ reason: 'HTTP 503', attempt: 2, will_retry: true });
    expect(log[2]!.details).toMatchObject({ attempt: 3, transport: 'http' });
    expect(log.every((entry) => entry.msisdn === call.callee && entry.device_id === deviceId)).toBe(true);
  });

  it('a retry due at once is attempted then, not at the next poll (its timer is set after its row commits)', async () => {
    // No jitter: the retry falls due 1 ms after the failure, before the failure's transaction ends.
    const d = newDispatcher({ random: () => 0 });
    await d.start();
    const call = await addCall();
    const { deviceId, receiver } = await addSpeaker({ kind: 'fail', times: 3 });
    const id = await addNotification(call, deviceId, receiver.url);
    d.kick();
    const row = await statusIs(id, 'delivered', 3_000);
    expect(row.attempts).toBe(4);
    expect(receiver.requests.map((request) => request.answered)).toEqual([503, 503, 503, 200]);
  });

  it('fans out to three speakers; one that hangs delays nobody', async () => {
    const d = newDispatcher({ timeoutMs: 2_000 });
    await d.start();
    const call = await addCall();
    const speakers = [await addSpeaker(), await addSpeaker({ kind: 'hang' }), await addSpeaker()];
    const ids = [];
    for (const { deviceId, receiver } of speakers) ids.push(await addNotification(call, deviceId, receiver.url));
    const kickedAt = performance.now();
    d.kick();
    const fast = await Promise.all([speakers[0]!, speakers[2]!].map(({ receiver }) => waitFor('a fast speaker', () => receiver.delivered[0], 2_000)));
    for (const arrived of fast) expect(arrived.arrivedAtMono - kickedAt).toBeLessThan(500);
    await statusIs(ids[0]!, 'delivered');
    await statusIs(ids[2]!, 'delivered');
    // The hanging one is still in flight, well before its timeout.
    expect(performance.now() - kickedAt).toBeLessThan(1_500);
    expect(speakers[1]!.receiver.requests).toHaveLength(1);
    expect((await notification(ids[1]!)).status).toBe('delivering');
    expect(d.inFlight).toBe(1);
  });

  it('a receiver down for the whole window: retries stop when the notification expires', async () => {
    const d = newDispatcher({ retry: { baseMs: 250, maxMs: 5_000 }, random: () => 0.5 });
    await d.start();
    const call = await addCall();
    const deviceId = `speaker-${++counter}`;
    const endpoint = `http://127.0.0.1:${await closedPort()}/speaker`;
    await addDevice(deviceId, endpoint, generateSigningSecret());
    const id = await addNotification(call, deviceId, endpoint, 'incoming_call.ringing', { ttlMs: 1_500 });
    d.kick();
    const row = await statusIs(id, 'expired', 4_000);
    // Backoff 125, 250, 500 ms: attempts at 0, 125, 375, 875 ms; the next (1 875 ms) is past the
    // TTL, so the fourth failure expires it (a slow machine may get there after three).
    expect(row.attempts).toBeGreaterThanOrEqual(3);
    expect(row.attempts).toBeLessThanOrEqual(4);
    expect(row.last_error).toMatch(/ECONNREFUSED/);
    const log = await logOf(call.correlationId);
    const failed = log.filter((entry) => entry.type === 'notification.failed');
    expect(failed.length).toBeGreaterThanOrEqual(row.attempts - 1);
    expect(failed.every((entry) => (entry.details as { will_retry?: boolean }).will_retry === true)).toBe(true);
    expect(log.map((entry) => entry.type).at(-1)).toBe('notification.expired');
    expect(log.at(-1)).toMatchObject({ status: 'failed', device_id: deviceId, msisdn: call.callee });
    expect(log.at(-1)!.details).toMatchObject({ notification_id: id, attempts: row.attempts });
    // Nothing more is tried.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await notification(id)).attempts).toBe(row.attempts);
  });

  it('a pending notification whose time is up expires without an attempt', async () => {
    const d = newDispatcher();
    const call = await addCall();
    const { deviceId, receiver } = await addSpeaker();
    const id = await addNotification(call, deviceId, receiver.url, 'incoming_call.ringing', { expiresAt: new Date(Date.now() - 1) });
    await d.start();
    const row = await statusIs(id, 'expired');
    expect(row.attempts).toBe(0);
    expect(receiver.requests).toHaveLength(0);
    expect((await logOf(call.correlationId)).map((entry) => entry.type)).toEqual(['notification.expired']);
  });

  it('never sends answered or ended to a speaker before its ringing is settled', async () => {
    const d = newDispatcher();
    await d.start();
    const call = await addCall();
    const { deviceId, receiver } = await addSpeaker({ kind: 'slow', delayMs: 300 });
    // Written together, all due at once: the later steps wait for the earlier ones.
    const ringing = await addNotification(call, deviceId, receiver.url, 'incoming_call.ringing');
    const answered = await addNotification(call, deviceId, receiver.url, 'incoming_call.answered');
    const ended = await addNotification(call, deviceId, receiver.url, 'incoming_call.ended');
    d.kick();
    await waitFor('the ringing to arrive', () => receiver.requests[0]);
    expect((await notification(answered)).status).toBe('pending');
    expect((await notification(ended)).status).toBe('pending');
    await statusIs(ended, 'delivered');
    expect(receiver.requests.map((request) => request.body.type)).toEqual(['incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended']);
    expect(receiver.maxInFlight).toBe(1);
    const [first, second, third] = receiver.requests;
    expect(second!.arrivedAtMono - first!.arrivedAtMono).toBeGreaterThanOrEqual(290);
    expect(third!.arrivedAtMono - second!.arrivedAtMono).toBeGreaterThanOrEqual(290);
    expect((await notification(ringing)).status).toBe('delivered');
  });

  it('a ringing that failed for good does not hold back the ended', async () => {
    const d = newDispatcher();
    await d.start();
    const call = await addCall();
    const { deviceId, receiver } = await addSpeaker({ kind: 'fail', times: 1, status: 404 });
    const ringing = await addNotification(call, deviceId, receiver.url, 'incoming_call.ringing');
    const ended = await addNotification(call, deviceId, receiver.url, 'incoming_call.ended');
    d.kick();
    await statusIs(ended, 'delivered');
    expect((await notification(ringing)).status).toBe('failed');
    const log = await logOf(call.correlationId);
    expect(log.map((entry) => entry.type)).toEqual(['notification.failed', 'notification.sent']);
    expect(log[0]!.details).toMatchObject({ reason: 'HTTP 404', will_retry: false });
  });

  it('410 Gone: the notification is gone, the endpoint marked gone, and nothing more is sent there', async () => {
    const d = newDispatcher();
    await d.start();
    const call = await addCall();
    const { deviceId, receiver } = await addSpeaker({ kind: 'status', status: 410 });
    const ringing = await addNotification(call, deviceId, receiver.url, 'incoming_call.ringing');
    const ended = await addNotification(call, deviceId, receiver.url, 'incoming_call.ended');
    d.kick();
    await statusIs(ringing, 'gone');
    await statusIs(ended, 'gone');
    const device = await db.selectFrom('devices').selectAll().where('device_id', '=', deviceId).executeTakeFirstOrThrow();
    expect(device.endpoint_gone_at).toBeInstanceOf(Date);
    expect(receiver.requests).toHaveLength(1);
    const log = await logOf(call.correlationId);
    expect(log.map((entry) => entry.type)).toEqual(['notification.failed', 'notification.failed']);
    expect(log[0]!.details).toMatchObject({ reason: 'gone', will_retry: false });
  });

  it('keeps at most `concurrency` deliveries in flight', async () => {
    const d = newDispatcher({ concurrency: 2 });
    await d.start();
    await d.settle();
    receivers.maxInFlight = 0;
    const call = await addCall();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { deviceId, receiver } = await addSpeaker({ kind: 'slow', delayMs: 150 });
      ids.push(await addNotification(call, deviceId, receiver.url));
    }
    const started = performance.now();
    d.kick();
    let maxSeen = 0;
    await waitFor('all five delivered', async () => {
      maxSeen = Math.max(maxSeen, d.inFlight);
      const rows = await db.selectFrom('notifications').select('status').where('id', 'in', ids).execute();
      return rows.every((row) => row.status === 'delivered');
    });
    expect(maxSeen).toBeLessThanOrEqual(2);
    expect(receivers.maxInFlight).toBe(2);
    // Three rounds of 150 ms at two at a time.
    expect(performance.now() - started).toBeGreaterThanOrEqual(440);
  });

  it('claimed at birth: sent once the intake commits, within the slots; a birth it never adopted is sent by its next start', async () => {
    const d = newDispatcher({ concurrency: 1 });
    await d.start();
    await d.settle();
    receivers.maxInFlight = 0;
    const msisdn = '+79160000101';
    const speakers = [await addSpeaker({ kind: 'slow', delayMs: 100 }, msisdn), await addSpeaker({ kind: 'slow', delayMs: 100 }, msisdn)];
    const call = { call_id: `call-birth-${++counter}`, caller: '+79165550199', caller_name: null, callee: msisdn, source: 'api' as const, correlation_id: randomUUID(), request_id: null };
    const now = new Date();
    const birth = d.birth();
    const written = await insertRingingCalls(db, [call], { now, expiresAt: new Date(now.getTime() + 10_000), claimedBy: birth.claimedBy });
    // Written claimed by this instance: no pass of the dispatcher has to claim them.
    expect(written.notifications.map(({ row }) => [row.status, row.claimed_by, row.attempts])).toEqual([
      ['delivering', INSTANCE, 1],
      ['delivering', INSTANCE, 1],
    ]);
    d.adopt(birth, written.notifications.map(({ row, signingSecret }) => ({ row, msisdn, device: { endpoint: row.endpoint, signing_secret: signingSecret, enabled: true, endpoint_gone_at: null } })));
    // One slot: the second goes back to the queue and follows the first.
    for (const { row } of written.notifications) expect((await statusIs(row.id, 'delivered')).attempts).toBeLessThanOrEqual(2);
    expect(receivers.maxInFlight).toBe(1);
    expect(speakers.map(({ receiver }) => receiver.delivered.length)).toEqual([1, 1]);

    // A birth whose process died after the commit, before sending: nothing was adopted.
    const orphan = { ...call, call_id: `call-birth-${++counter}`, correlation_id: randomUUID() };
    const lost = d.birth();
    const unsent = await insertRingingCalls(db, [orphan], { now, expiresAt: new Date(now.getTime() + 10_000), claimedBy: lost.claimedBy });
    d.abandon(lost);
    await d.stop();
    const next = newDispatcher();
    await next.start();
    for (const { row } of unsent.notifications) await statusIs(row.id, 'delivered');
    expect(speakers.map(({ receiver }) => receiver.delivered.length)).toEqual([2, 2]);
  });

  it('while a birth may be committing, puts back only its own orphans older than staleAfterMs', async () => {
    const d = newDispatcher({ pollIntervalMs: 100, staleAfterMs: 1_000 });
    await d.start();
    await d.settle();
    const call = await addCall();
    const old = await addSpeaker();
    const recent = await addSpeaker();
    // Claimed by this instance, not in flight here: their outcome could not be recorded.
    const orphan = await addNotification(call, old.deviceId, old.receiver.url, 'incoming_call.ringing', { status: 'delivering', claimedBy: INSTANCE, attempts: 1 });
    await db.updateTable('notifications').set({ created_at: new Date(Date.now() - 5_000) }).where('id', '=', orphan).execute();
    const birth = d.birth();
    // Written like a birth that is committing right now: it must not be sent twice.
    const young = await addNotification(call, recent.deviceId, recent.receiver.url, 'incoming_call.ringing', { status: 'delivering', claimedBy: INSTANCE, attempts: 1 });
    expect((await statusIs(orphan, 'delivered')).attempts).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await notification(young)).toMatchObject({ status: 'delivering', attempts: 1 });
    expect(recent.receiver.requests).toHaveLength(0);
    // Once no birth is open, a row of this instance that is not in flight is an orphan.
    d.abandon(birth);
    expect((await statusIs(young, 'delivered')).attempts).toBe(2);
  });

  it('recovers rows left delivering by its earlier life and by a stale instance, not those of a live one', async () => {
    const now = new Date();
    await db
      .insertInto('gateway_instances')
      .values([
        { id: 'dead-gateway', started_at: new Date(now.getTime() - 120_000), heartbeat_at: new Date(now.getTime() - 60_000) },
        { id: 'live-gateway', started_at: new Date(now.getTime() - 120_000), heartbeat_at: now },
      ])
      .execute();
    const call = await addCall();
    const mine = await addSpeaker();
    const dead = await addSpeaker();
    const live = await addSpeaker();
    const fromMe = await addNotification(call, mine.deviceId, mine.receiver.url, 'incoming_call.ringing', { status: 'delivering', claimedBy: INSTANCE, attempts: 1 });
    const fromDead = await addNotification(call, dead.deviceId, dead.receiver.url, 'incoming_call.ringing', { status: 'delivering', claimedBy: 'dead-gateway', attempts: 1 });
    const fromLive = await addNotification(call, live.deviceId, live.receiver.url, 'incoming_call.ringing', { status: 'delivering', claimedBy: 'live-gateway', attempts: 1 });

    const d = newDispatcher({ pollIntervalMs: 100 });
    await d.start();
    expect((await statusIs(fromMe, 'delivered')).attempts).toBe(2);
    expect((await statusIs(fromDead, 'delivered', 3_000)).claimed_by).toBe(INSTANCE);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(await notification(fromLive)).toMatchObject({ status: 'delivering', claimed_by: 'live-gateway' });
    expect(live.receiver.requests).toHaveLength(0);
    expect(mine.receiver.delivered[0]!.webhookId).toBe(fromMe);
  });

  it('stop() waits for the delivery in flight and leaves queued rows for the next start', async () => {
    const d = newDispatcher();
    await d.start();
    const call = await addCall();
    const slow = await addSpeaker({ kind: 'slow', delayMs: 200 });
    const inFlight = await addNotification(call, slow.deviceId, slow.receiver.url);
    d.kick();
    await waitFor('the request', () => slow.receiver.requests[0]);
    await d.stop();
    expect((await notification(inFlight)).status).toBe('delivered');
    const later = await addSpeaker();
    const queued = await addNotification(call, later.deviceId, later.receiver.url);
    d.kick();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await notification(queued)).status).toBe('pending');
    await d.start();
    await statusIs(queued, 'delivered');
  });

  it('delivers to an MQTT speaker: the subscriber gets the payload at QoS 1', async () => {
    const d = newDispatcher();
    await d.start();
    const call = await addCall();
    const deviceId = `speaker-${++counter}`;
    const topic = `tig-test/${randomUUID()}/${deviceId}`;
    const endpoint = `${broker.url}/${topic}`;
    await addDevice(deviceId, endpoint, null);
    const subscriber = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 2_000 });
    try {
      await subscriber.subscribeAsync(topic, { qos: 1 });
      const received = new Promise<{ payload: string; qos: number }>((resolve) =>
        subscriber.on('message', (_topic, message, packet) => resolve({ payload: message.toString('utf8'), qos: packet.qos })),
      );
      const id = await addNotification(call, deviceId, endpoint);
      d.kick();
      const message = await received;
      expect(message.qos).toBe(1);
      expect(JSON.parse(message.payload)).toMatchObject({ id, type: 'incoming_call.ringing', call_id: call.callId });
      await statusIs(id, 'delivered');
      const log = await logOf(call.correlationId);
      expect(log.map((entry) => entry.type)).toEqual(['notification.sent']);
      expect(log[0]!.details).toMatchObject({ transport: 'mqtt', attempt: 1 });
    } finally {
      await subscriber.endAsync(true);
    }
  });

  it('a device deleted or disabled meanwhile gets nothing', async () => {
    const d = newDispatcher();
    await d.start();
    const call = await addCall();
    const disabled = await addSpeaker();
    await db.updateTable('devices').set({ enabled: false }).where('device_id', '=', disabled.deviceId).execute();
    const a = await addNotification(call, disabled.deviceId, disabled.receiver.url);
    const b = await addNotification(call, 'no-such-device', disabled.receiver.url);
    d.kick();
    expect((await statusIs(a, 'failed')).last_error).toMatch(/disabled/);
    expect((await statusIs(b, 'failed')).last_error).toMatch(/no longer exists/);
    expect(disabled.receiver.requests).toHaveLength(0);
  });
});
