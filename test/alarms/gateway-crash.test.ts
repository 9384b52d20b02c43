/**
 * Process-level reliability of alarm calls: real gateway processes (`node bin/iot-gateway.js
 * serve`) placing calls through the Event Socket peer, killed with SIGKILL and restarted.
 *
 * - A crash while a call is live: the restarted instance (same INSTANCE_ID) asks the switch
 *   (uuid_exists), finds the channel, keeps watching it, and never dials it again.
 * - A crash while the call ends: the switch no longer has the channel, so its outcome is lost;
 *   the call is recorded failed (OUTCOME_UNKNOWN) and made again once, under a new call id.
 *
 * Two instances on one PostgreSQL, one killed mid-run, are test/chaos/two-instances.test.ts.
 *
 * On PGlite the gateway keeps its data in a temporary DATA_DIR (one process at a time); on
 * PostgreSQL it works in this file's schema (DATABASE_URL with `options=-c search_path=...`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EslClient } from '../../src/telephony/freeswitch/esl-client.js';
import { createTestDatabase, onPostgres, testDatabaseUrl, type TestDatabase } from '../support/database.js';
import { startEslPeer, type CallScript, type EslPeer, type OriginateRequest } from '../support/esl-peer.js';
import { startGateway, type GatewayProcess } from '../support/gateway-process.js';
import { until } from '../support/waiting.js';

const ADMIN_KEY = 'crash-test-admin-key-0123456789abcdef';
const FIRST = '+79161110001';
const SECOND = '+79161110002';
const SILENT = { debug() {}, info() {}, warn() {}, error() {} };

// ---- the processes under test, and cleanup whatever happens ------------------------------------

const gateways = new Set<GatewayProcess>();
const peers = new Set<EslPeer>();
const consoles = new Set<{ stop(): Promise<void> }>();
let database: TestDatabase | undefined;
let dataDir: string | undefined;
/** Where every gateway of this file keeps its data. */
let storageEnv: Record<string, string>;

beforeAll(async () => {
  if (onPostgres) {
    database = await createTestDatabase();
    const separator = testDatabaseUrl.includes('?') ? '&' : '?';
    storageEnv = { DATABASE_URL: `${testDatabaseUrl}${separator}options=${encodeURIComponent(`-c search_path=${database.schema!}`)}` };
  } else {
    dataDir = mkdtempSync(path.join(tmpdir(), 'gateway-crash-'));
    storageEnv = { DATA_DIR: dataDir };
  }
});

afterAll(async () => {
  await Promise.allSettled([...gateways].map((gateway) => gateway.stop('SIGKILL')));
  await Promise.allSettled([...consoles].map((client) => client.stop()));
  await Promise.allSettled([...peers].map((peer) => peer.close()));
  await database?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

async function peerFor(onOriginate: (call: OriginateRequest) => CallScript): Promise<EslPeer> {
  const peer = await startEslPeer({ onOriginate });
  peers.add(peer);
  return peer;
}

function gatewayEnv(peer: EslPeer, instanceId: string): Record<string, string> {
  return {
    ...storageEnv,
    TELEPHONY: 'freeswitch',
    FREESWITCH_ESL_URL: `tcp://127.0.0.1:${peer.port}`,
    FREESWITCH_ESL_PASSWORD: 'ClueCon',
    INSTANCE_ID: instanceId,
    ADMIN_API_KEY: ADMIN_KEY,
    LOG_LEVEL: 'info',
  };
}

/**
 * Starts a gateway the way a supervisor restarts a crashed one: again and again while it says its
 * data folder is in use. After a SIGKILL on PGlite the folder's lock stays until it is stale
 * (15 s): see the report on src/storage/database.ts.
 */
async function launch(env: Record<string, string>, withinMs = 40_000): Promise<GatewayProcess> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      const gateway = await startGateway(env);
      gateways.add(gateway);
      return gateway;
    } catch (error) {
      const message = (error as Error).message;
      if (!message.includes('in use by another gateway process') || Date.now() > deadline) throw error;
      await sleep(500);
    }
  }
}

// ---- HTTP ----------------------------------------------------------------------------------------

interface Reply<T = Record<string, unknown>> {
  status: number;
  body: T;
}

async function http<T = Record<string, unknown>>(gateway: GatewayProcess, method: string, url: string, body?: unknown, key = ADMIN_KEY): Promise<Reply<T>> {
  const response = await fetch(`${gateway.baseUrl}${url}`, {
    method,
    headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
}

async function createWebhookKey(gateway: GatewayProcess): Promise<string> {
  const created = await http<{ key: string }>(gateway, 'POST', '/api/v1/api-keys', { role: 'webhook', name: 'crash test' });
  expect(created.status).toBe(201);
  return created.body.key;
}

async function sensorWithRule(gateway: GatewayProcess, deviceId: string, to: string[], action: Record<string, unknown> = {}): Promise<void> {
  const device = await http(gateway, 'POST', '/api/v1/devices', { device_id: deviceId, type: 'sensor_smoke', msisdn: '+79160000001' });
  if (device.status !== 201) throw new Error(`device ${deviceId}: ${device.status} ${JSON.stringify(device.body)}`);
  const rule = await http(gateway, 'POST', '/api/v1/rules', {
    name: `smoke at ${deviceId}`,
    event_type: 'smoke',
    device_id: deviceId,
    action: { type: 'call', to, message: 'Smoke detected at home', require_ack: true, ...action },
  });
  if (rule.status !== 201) throw new Error(`rule for ${deviceId}: ${rule.status} ${JSON.stringify(rule.body)}`);
}

interface EventReply {
  status?: string;
  alarm_ids?: string[];
}

function smoke(gateway: GatewayProcess, webhookKey: string, deviceId: string, eventId: string): Promise<Reply<EventReply>> {
  return http<EventReply>(gateway, 'POST', '/api/v1/webhooks/events', { event_id: eventId, device_id: deviceId, event_type: 'smoke' }, webhookKey);
}

interface ApiCall {
  id: string;
  to: string;
  position: number;
  attempt: number;
  status: string;
  acknowledged: boolean;
  hangup_cause: string | null;
  redial_of: string | null;
}

interface ApiAlarm {
  id: string;
  status: string;
  end_reason: string | null;
  correlation_id: string;
  calls: ApiCall[];
}

async function getAlarm(gateway: GatewayProcess, id: string): Promise<ApiAlarm> {
  const reply = await http<ApiAlarm>(gateway, 'GET', `/api/v1/alarms/${id}`);
  expect(reply.status).toBe(200);
  return reply.body;
}

/** Event-log types of one chain of work, oldest first. */
async function logTypes(gateway: GatewayProcess, correlationId: string): Promise<{ type: string; details: Record<string, unknown> }[]> {
  const reply = await http<{ items: { type: string; details: Record<string, unknown> }[] }>(
    gateway,
    'GET',
    `/api/v1/event-logs?correlation_id=${encodeURIComponent(correlationId)}&limit=100`,
  );
  expect(reply.status).toBe(200);
  return reply.body.items.reverse();
}

const countOf = (types: string[], type: string) => types.filter((t) => t === type).length;

// ---- waiting -----------------------------------------------------------------------------------

// ---- the callee, acting on the switch ----------------------------------------------------------

interface Callee {
  /** The switch's channels now (`show channels as json`). */
  channels(): Promise<{ uuid: string; callstate: string }[]>;
  /** The callee hangs up (NORMAL_CLEARING). */
  hangUp(uuid: string): Promise<string>;
  stop(): Promise<void>;
}

/**
 * An Event Socket client of the test's own, acting for the people called: it sees the switch's
 * channels and hangs calls up. With `hangUpAfterPressing1`, every callee hangs up once the switch
 * has reported their "1": the peer's scripted `hangupAfterMs` is a timer of its own that, when the
 * event loop lags, can fire before the DTMF timer and swallow the digit (see the report on
 * test/support/esl-peer.ts), whereas this hang-up is sent only after the DTMF event went out.
 */
async function calleeConsole(peer: EslPeer, options: { hangUpAfterPressing1?: boolean } = {}): Promise<Callee> {
  const client = new EslClient({ host: '127.0.0.1', port: peer.port, password: 'ClueCon', logger: SILENT, events: ['DTMF'] });
  const hangUp = (uuid: string) => client.api(`uuid_kill ${uuid} NORMAL_CLEARING`);
  if (options.hangUpAfterPressing1) {
    client.on('event', (event) => {
      const uuid = event.headers['Unique-ID'];
      if (event.name === 'DTMF' && event.headers['DTMF-Digit'] === '1' && uuid) hangUp(uuid).catch(() => {});
    });
  }
  const connected = new Promise<void>((resolve) => client.once('connected', () => resolve()));
  consoles.add(client);
  client.start();
  await connected;
  return {
    async channels() {
      const reply = JSON.parse(await client.api('show channels as json')) as { rows?: { uuid: string; callstate: string }[] };
      return reply.rows ?? [];
    },
    hangUp,
    stop: () => client.stop(),
  };
}

const originatedIds = (peer: EslPeer) => peer.originates.map((o) => o.variables.origination_uuid!);
const originatesTo = (peer: EslPeer, number: string) => peer.originates.filter((o) => o.dialString.endsWith(`/${number}`));

// ------------------------------------------------------------------------------------------------

describe(`a gateway process killed during an alarm (${onPostgres ? 'PostgreSQL schema' : 'PGlite DATA_DIR'})`, () => {
  it('adopts the live call after a restart: one originate, resolved by the first number', { timeout: 60_000 }, async () => {
    // The first number rings, is answered 1.5 s later, and stays on the line (the callee presses 1
    // and hangs up below, once the gateway is back).
    const peer = await peerFor(() => ({ outcome: 'answer', answerAfterMs: 1_500 }));
    const env = gatewayEnv(peer, 'crash-test');
    const first = await launch(env);
    const webhookKey = await createWebhookKey(first);
    await sensorWithRule(first, 'crash-live', [FIRST, SECOND]);

    const accepted = await smoke(first, webhookKey, 'crash-live', 'evt-crash-live');
    expect(accepted.status).toBe(202);
    expect(accepted.body).toMatchObject({ status: 'accepted' });
    const alarmId = accepted.body.alarm_ids![0]!;

    await until('the switch has the originate', () => peer.originates.length > 0, 10_000, 5);
    expect(await first.stop('SIGKILL')).toBe('SIGKILL');
    const callId = peer.originates[0]!.variables.origination_uuid!;
    expect(peer.originates[0]!.variables.tig_call_id).toBe(callId);
    expect(peer.liveChannels()).toEqual([callId]);

    const second = await launch(env);
    // Before anything else the restarted instance asked the switch about its call in flight.
    expect(peer.commands).toContain(`api uuid_exists ${callId}`);

    const callee = await calleeConsole(peer);
    try {
      await until('the callee has answered', async () => (await callee.channels()).some((c) => c.uuid === callId && c.callstate === 'ACTIVE'), 10_000);
      // The adopting gateway drives the call it did not place: the callee hears the message and
      // the request to press 1 (whether the answer came before or after the restart).
      await until('the message and the prompt', async () => {
        const apps = peer.commands.filter((command) => command.startsWith(`sendmsg ${callId}`)).map((command) => /execute-app-name: (\S+)/.exec(command)?.[1]);
        return apps.join(',') === 'speak,play_and_get_digits,hangup';
      }, 10_000);
      // The callee presses 1 ...
      peer.emitEvent('DTMF', { 'Unique-ID': callId, 'Channel-Call-UUID': callId, 'DTMF-Digit': '1', 'DTMF-Duration': '2000' });
      await until('the alarm is resolved', async () => (await getAlarm(second, alarmId)).status === 'resolved', 10_000);
      // ... and hangs up.
      expect(await callee.hangUp(callId)).toMatch(/^\+OK/);
    } finally {
      await callee.stop();
    }
    const alarm = await until(
      'the call is recorded as ended',
      async () => {
        const current = await getAlarm(second, alarmId);
        return current.calls.every((call) => call.status === 'completed') ? current : undefined;
      },
      10_000,
    );

    expect(alarm.status).toBe('resolved');
    expect(alarm.end_reason).toBe(`confirmed by ${FIRST}`);
    expect(alarm.calls).toHaveLength(1);
    expect(alarm.calls[0]).toMatchObject({ id: callId, to: FIRST, position: 0, attempt: 1, status: 'completed', acknowledged: true, redial_of: null });
    // One originate for the whole alarm: the channel found by uuid_exists was adopted, not dialed again.
    expect(peer.originates).toHaveLength(1);
    expect(originatesTo(peer, SECOND)).toHaveLength(0);

    const types = (await logTypes(second, alarm.correlation_id)).map((row) => row.type);
    expect(countOf(types, 'event.received')).toBe(1);
    expect(countOf(types, 'alarm.started')).toBe(1);
    expect(countOf(types, 'alarm.resolved')).toBe(1);
    expect(countOf(types, 'call.dialing')).toBe(1);
    expect(countOf(types, 'call.acknowledged')).toBe(1);
    expect(countOf(types, 'call.completed')).toBe(1);
    expect(countOf(types, 'call.failed')).toBe(0);

    await second.stop('SIGTERM');
  });

  it('re-dials once, under a new call id, a call that ended while the gateway was dead', { timeout: 60_000 }, async () => {
    // The first call to the first number goes unanswered 1 s after the originate; any later call
    // is answered, 1 is pressed, and the callee hangs up.
    const peer = await peerFor((call) =>
      originatesTo(peer, FIRST).length === 1 && call.dialString.endsWith(`/${FIRST}`)
        ? { outcome: 'fail', cause: 'NO_ANSWER', afterMs: 1_000 }
        : { outcome: 'answer', answerAfterMs: 50, dtmf: '1', dtmfIntervalMs: 50 },
    );
    const callee = await calleeConsole(peer, { hangUpAfterPressing1: true });
    const env = gatewayEnv(peer, 'crash-test');
    const first = await launch(env);
    const webhookKey = await createWebhookKey(first);
    await sensorWithRule(first, 'crash-lost', [FIRST, SECOND]);

    const accepted = await smoke(first, webhookKey, 'crash-lost', 'evt-crash-lost');
    expect(accepted.status).toBe(202);
    const alarmId = accepted.body.alarm_ids![0]!;

    await until('the switch has the originate', () => peer.originates.length > 0, 10_000, 5);
    await first.stop('SIGKILL');
    const lostId = peer.originates[0]!.variables.origination_uuid!;
    // The call ends while no gateway is listening: its outcome is lost.
    await until('the channel is gone', () => peer.liveChannels().length === 0, 10_000, 20);

    const second = await launch(env);
    const alarm = await until(
      'the alarm has ended and its calls too',
      async () => {
        const current = await getAlarm(second, alarmId);
        return current.status !== 'active' && current.calls.every((call) => !['queued', 'dialing', 'ringing', 'answered'].includes(call.status)) ? current : undefined;
      },
      15_000,
    );

    expect(alarm.status).toBe('resolved');
    expect(alarm.end_reason).toBe(`confirmed by ${FIRST}`);
    expect(alarm.calls).toHaveLength(2);
    const [lost, redial] = alarm.calls;
    expect(lost).toMatchObject({ id: lostId, to: FIRST, position: 0, attempt: 1, status: 'failed', hangup_cause: 'OUTCOME_UNKNOWN', acknowledged: false, redial_of: null });
    // The same attempt, made again under a new id.
    expect(redial).toMatchObject({ to: FIRST, position: 0, attempt: 1, status: 'completed', acknowledged: true, redial_of: lostId });
    expect(redial!.id).not.toBe(lostId);

    // Two originates to the first number with distinct uuids, none to the second, no id dialed twice.
    const toFirst = originatesTo(peer, FIRST).map((o) => o.variables.origination_uuid);
    expect(toFirst).toEqual([lostId, redial!.id]);
    expect(originatesTo(peer, SECOND)).toHaveLength(0);
    expect(new Set(originatedIds(peer)).size).toBe(peer.originates.length);
    // The switch was asked about the lost call before it was made again.
    const asked = peer.commands.indexOf(`api uuid_exists ${lostId}`);
    const redialed = peer.commands.findIndex((command) => command.includes(`origination_uuid=${redial!.id}`));
    expect(asked).toBeGreaterThanOrEqual(0);
    expect(redialed).toBeGreaterThan(asked);

    const rows = await logTypes(second, alarm.correlation_id);
    const types = rows.map((row) => row.type);
    expect(countOf(types, 'event.received')).toBe(1);
    expect(countOf(types, 'alarm.started')).toBe(1);
    expect(countOf(types, 'alarm.resolved')).toBe(1);
    expect(countOf(types, 'call.dialing')).toBe(2);
    expect(rows.find((row) => row.type === 'call.failed')?.details).toMatchObject({ call_id: lostId, cause: 'OUTCOME_UNKNOWN', outcome_unknown: true });
    expect(rows.find((row) => row.type === 'call.queued' && row.details.redial_of === lostId)?.details).toMatchObject({ call_id: redial!.id });

    await second.stop('SIGTERM');
    await callee.stop();
  });
});
