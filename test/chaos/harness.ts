/**
 * What every fault scenario shares: real gateway processes on this file's PostgreSQL schema, the
 * Event Socket peer, API helpers, the profile (CI's short one or the long one), and the report
 * each scenario prints and writes to .test-results/chaos/ (the README quotes the long run's).
 *
 * The scenarios run on PostgreSQL only: they need several processes on one database, or a
 * database that can be taken away; the embedded PGlite is one process's own.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import { until } from '../support/waiting.js';
import { EslClient } from '../../src/telephony/freeswitch/esl-client.js';
import { createTestDatabase, onPostgres, testDatabaseUrl, type TestDatabase } from '../support/database.js';
import { startEslPeer, type CallScript, type EslPeer, type EslPeerOptions } from '../support/esl-peer.js';
import { startGateway, type GatewayProcess } from '../support/gateway-process.js';

export const longProfile = process.env.TEST_PROFILE === 'long';

/** Sizes of the scenarios: the long profile is the one the README reports. */
export const profile = longProfile
  ? { crashEvents: 500, crashKills: 3, instancesEvents: 400, instancesCalls: 200, outageMs: 10_000, speakerCalls: 60 }
  : { crashEvents: 150, crashKills: 3, instancesEvents: 120, instancesCalls: 60, outageMs: 10_000, speakerCalls: 20 };

export const postgresOnly = !onPostgres;
if (postgresOnly) {
  console.log('chaos: the fault scenarios run in the postgres project only (several processes on one database, a database to take away); set TEST_DATABASE_URL');
}

export const ADMIN_KEY = 'chaos-test-admin-key-0123456789abcdef';
export const SILENT = { debug() {}, info() {}, warn() {}, error() {} };

export interface Reply<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
}

/** One scenario's processes and data, cleaned up whatever happens. */
export class ChaosRun {
  readonly gateways = new Set<GatewayProcess>();
  /** Every gateway this run started, killed ones too: their output is written at the end. */
  readonly #launched: GatewayProcess[] = [];
  readonly #closers: (() => Promise<unknown>)[] = [];
  database!: TestDatabase;
  /** DATABASE_URL of this run's schema (through `port` when given: a proxy). */
  databaseUrl(port?: number): string {
    const url = new URL(testDatabaseUrl);
    if (port !== undefined) {
      url.hostname = '127.0.0.1';
      url.port = String(port);
    }
    url.searchParams.set('options', `-c search_path=${this.database.schema!}`);
    return url.toString();
  }

  async open(): Promise<this> {
    this.database = await createTestDatabase();
    return this;
  }

  get db(): TestDatabase['storage']['db'] {
    return this.database.storage.db;
  }

  /** Closed when the run ends. */
  own<T extends { close(): Promise<unknown> } | { stop(): Promise<unknown> }>(thing: T): T {
    this.#closers.push(() => ('close' in thing ? thing.close() : thing.stop()));
    return thing;
  }

  async peer(onOriginate: (call: Parameters<NonNullable<EslPeerOptions['onOriginate']>>[0]) => CallScript): Promise<EslPeer> {
    return this.own(await startEslPeer({ onOriginate }));
  }

  gatewayEnv(extra: Record<string, string> = {}): Record<string, string> {
    return { DATABASE_URL: this.databaseUrl(), ADMIN_API_KEY: ADMIN_KEY, LOG_LEVEL: 'info', INSTANCE_STALE_AFTER_S: '3', ...extra };
  }

  freeswitchEnv(peer: { port: number }): Record<string, string> {
    return { TELEPHONY: 'freeswitch', FREESWITCH_ESL_URL: `tcp://127.0.0.1:${peer.port}`, FREESWITCH_ESL_PASSWORD: 'ClueCon' };
  }

  async launch(env: Record<string, string>): Promise<GatewayProcess> {
    const gateway = await startGateway(env);
    this.gateways.add(gateway);
    this.#launched.push(gateway);
    return gateway;
  }

  async close(): Promise<void> {
    // A gateway that died on its own is a finding: show how.
    const folder = path.resolve('.test-results', 'chaos');
    mkdirSync(folder, { recursive: true });
    for (const gateway of this.#launched) writeFileSync(path.join(folder, `gateway-${gateway.process.pid}.log`), gateway.output());
    for (const gateway of this.gateways) {
      const { exitCode } = gateway.process;
      if (exitCode !== null && exitCode !== 0) console.log(`chaos: a gateway exited by itself (code ${exitCode}); its last output:\n${gateway.output().slice(-4_000)}`);
    }
    await Promise.allSettled([...this.gateways].map((gateway) => gateway.stop('SIGKILL')));
    await Promise.allSettled(this.#closers.reverse().map((close) => close()));
    await this.database?.close();
  }
}

export async function api<T = Record<string, unknown>>(baseUrl: string, method: string, url: string, body?: unknown, key = ADMIN_KEY): Promise<Reply<T>> {
  const response = await fetch(`${baseUrl}${url}`, {
    method,
    headers: { 'x-api-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: (text ? JSON.parse(text) : {}) as T };
}

export async function createKey(gateway: GatewayProcess, role: 'webhook' | 'telephony'): Promise<string> {
  const created = await api<{ key: string }>(gateway.baseUrl, 'POST', '/api/v1/api-keys', { role, name: `chaos ${role}` });
  expect(created.status).toBe(201);
  return created.body.key;
}

/**
 * Registers smoke sensors, each with its rule, straight in the database: the big runs need
 * hundreds, and the API that registers them is tested elsewhere.
 */
export async function seedSensors(run: ChaosRun, sensors: { deviceId: string; to: string[]; action?: Record<string, unknown> }[]): Promise<void> {
  if (sensors.length === 0) return;
  await run.db.insertInto('devices').values(sensors.map(({ deviceId }) => ({ device_id: deviceId, type: 'sensor_smoke', msisdn: '+79160000001' }))).execute();
  await run.db
    .insertInto('rules')
    .values(
      sensors.map(({ deviceId, to, action }) => ({
        name: `smoke at ${deviceId}`,
        event_type: 'smoke',
        device_id: deviceId,
        action: JSON.stringify({ type: 'call', to, message: 'Smoke detected at home', caller_id: null, ring_timeout_s: 30, attempts: 1, retry_delay_s: 5, require_ack: true, ...action }),
      })),
    )
    .execute();
}

/** Speakers straight in the database, all with one signing secret (returned). */
export async function seedSpeakers(run: ChaosRun, speakers: { deviceId: string; msisdn: string; endpoint: string }[]): Promise<string> {
  const secret = `whsec_${Buffer.from('chaos-speakers-shared-secret-0123').toString('base64')}`;
  await run.db
    .insertInto('devices')
    .values(speakers.map(({ deviceId, msisdn, endpoint }) => ({ device_id: deviceId, type: 'speaker', msisdn, endpoint, signing_secret: secret })))
    .execute();
  return secret;
}

export interface EventReply {
  status?: string;
  alarm_ids?: string[];
}

export function smoke(baseUrl: string, key: string, deviceId: string, eventId: string): Promise<Reply<EventReply>> {
  return api<EventReply>(baseUrl, 'POST', '/api/v1/webhooks/events', { event_id: eventId, device_id: deviceId, event_type: 'smoke' }, key);
}

/**
 * Sends until the gateway acknowledges, as a vendor's cloud does: a refused connection, a reset
 * or a 503 is tried again (same event id) after a pause; any other answer is returned.
 */
export async function untilAcknowledged<T>(send: () => Promise<Reply<T>>, counters: { failedAttempts: number }, withinMs = 60_000): Promise<Reply<T>> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    try {
      const reply = await send();
      if (reply.status !== 503) return reply;
      expect(reply.headers.get('retry-after')).toMatch(/^\d+$/);
    } catch {
      // connection refused or reset: the gateway is down or died while answering
    }
    counters.failedAttempts++;
    if (Date.now() > deadline) throw new Error(`not acknowledged within ${withinMs} ms`);
    await sleep(100);
  }
}

/** Device-event rows and their log rows: every event received exactly once, logged once. */
export async function eventLedger(run: ChaosRun, eventIds: string[]): Promise<{ stored: number; logged: Map<string, number> }> {
  const stored = await run.db.selectFrom('device_events').select('event_id').where('event_id', 'in', eventIds).execute();
  const rows = await run.db
    .selectFrom('event_logs')
    .select(['details'])
    .where('type', '=', 'event.received')
    .execute();
  const logged = new Map<string, number>();
  for (const row of rows) {
    const id = (row.details as { event_id?: string }).event_id;
    if (id && eventIds.includes(id)) logged.set(id, (logged.get(id) ?? 0) + 1);
  }
  return { stored: stored.length, logged };
}

export interface CallRecord {
  id: string;
  alarm_id: string;
  to_number: string;
  status: string;
  acknowledged: boolean;
  hangup_cause: string | null;
  redial_of: string | null;
  claimed_by: string | null;
}

export async function callsOf(run: ChaosRun, alarmIds: string[]): Promise<CallRecord[]> {
  if (alarmIds.length === 0) return [];
  return run.db
    .selectFrom('calls')
    .select(['id', 'alarm_id', 'to_number', 'status', 'acknowledged', 'hangup_cause', 'redial_of', 'claimed_by'])
    .where('alarm_id', 'in', alarmIds)
    .orderBy('seq')
    .execute();
}

/** Every alarm ended and none of its calls in flight: the calls. */
export async function settledCalls(run: ChaosRun, alarmIds: string[]): Promise<CallRecord[] | undefined> {
  const active = await run.db.selectFrom('alarms').select('id').where('id', 'in', alarmIds).where('status', '=', 'active').execute();
  if (active.length > 0) return undefined;
  const calls = await callsOf(run, alarmIds);
  return calls.every((call) => !['queued', 'dialing', 'ringing', 'answered'].includes(call.status)) ? calls : undefined;
}

/** Waits until every alarm has ended and its calls too; on timeout, says what is left and where. */
export async function untilSettled(run: ChaosRun, alarmIds: string[], ms: number): Promise<CallRecord[]> {
  try {
    return await until(`all ${alarmIds.length} alarms ended`, () => settledCalls(run, alarmIds), ms, 250);
  } catch (error) {
    const alarms = await run.db.selectFrom('alarms').select(['status']).select((eb) => eb.fn.countAll<number>().as('n')).where('id', 'in', alarmIds).groupBy('status').execute();
    const calls = await run.db
      .selectFrom('calls')
      .select(['status', 'claimed_by'])
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('alarm_id', 'in', alarmIds)
      .groupBy(['status', 'claimed_by'])
      .execute();
    throw new Error(`${(error as Error).message}; alarms ${JSON.stringify(alarms)}; calls ${JSON.stringify(calls)}`);
  }
}

/**
 * The no-double-call rule, checked against what the switch saw: no call id was originated twice;
 * a second call of one alarm to one number exists only as the re-dial of a call whose outcome was
 * lost (OUTCOME_UNKNOWN), and the switch had been asked about that call (uuid_exists) before the
 * re-dial's originate reached it. Returns the number of such re-dials.
 */
export function checkNoDoubleCalls(peer: EslPeer, calls: CallRecord[]): { redials: number; originates: number } {
  const originated = peer.originates.map((o) => o.variables.origination_uuid!);
  expect(new Set(originated).size).toBe(originated.length);
  const byId = new Map(calls.map((call) => [call.id, call]));
  let redials = 0;
  for (const call of calls) {
    if (!call.redial_of) continue;
    redials++;
    const lost = byId.get(call.redial_of);
    expect(lost, `re-dial ${call.id} of an unknown call`).toBeDefined();
    expect(lost).toMatchObject({ status: 'failed', hangup_cause: 'OUTCOME_UNKNOWN' });
    const asked = peer.commands.indexOf(`api uuid_exists ${call.redial_of}`);
    const dialed = peer.commands.findIndex((command) => command.includes(`origination_uuid=${call.id}`));
    expect(asked, `the switch was asked about ${call.redial_of} before its re-dial`).toBeGreaterThanOrEqual(0);
    if (dialed >= 0) expect(asked).toBeLessThan(dialed);
  }
  // Per alarm and number: one call, plus one re-dial per lost outcome, never more.
  const perTarget = new Map<string, CallRecord[]>();
  for (const call of calls) perTarget.set(`${call.alarm_id} ${call.to_number}`, [...(perTarget.get(`${call.alarm_id} ${call.to_number}`) ?? []), call]);
  for (const group of perTarget.values()) {
    const known = group.filter((call) => call.hangup_cause !== 'OUTCOME_UNKNOWN');
    expect(known.length, `calls with a known outcome to ${group[0]!.to_number}`).toBeLessThanOrEqual(1);
  }
  return { redials, originates: originated.length };
}

/**
 * An Event Socket client acting for the people called: each callee presses 1 when asked and hangs
 * up once the switch has reported the digit (at once, or `hangUpAfterMs` later).
 */
export async function calleesPressing1(run: ChaosRun, peer: EslPeer, hangUpAfterMs = 0): Promise<void> {
  const client = new EslClient({ host: '127.0.0.1', port: peer.port, password: 'ClueCon', logger: SILENT, events: ['DTMF'] });
  const timers = new Set<NodeJS.Timeout>();
  run.own({ stop: async () => timers.forEach((timer) => clearTimeout(timer)) });
  client.on('event', (event) => {
    const uuid = event.headers['Unique-ID'];
    if (event.name !== 'DTMF' || event.headers['DTMF-Digit'] !== '1' || !uuid) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      client.api(`uuid_kill ${uuid} NORMAL_CLEARING`).catch(() => {});
    }, hangUpAfterMs);
    timers.add(timer);
  });
  const connected = new Promise<void>((resolve) => client.once('connected', () => resolve()));
  run.own(client);
  client.start();
  await connected;
}

/**
 * Callees who press 1 when asked: whenever the switch is told to play the "press 1" prompt on a
 * channel (by the gateway that placed the call, or by one that adopted it after a crash), the
 * digit follows `delayMs` later, as long as the channel is up.
 */
export function calleesAnsweringPrompts(run: ChaosRun, peer: EslPeer, delayMs = 300): void {
  let seen = 0;
  const timers = new Set<NodeJS.Timeout>();
  const scan = setInterval(() => {
    for (; seen < peer.commands.length; seen++) {
      const command = peer.commands[seen]!;
      const uuid = /^sendmsg ([0-9a-f-]{36})/.exec(command)?.[1];
      if (!uuid || !/execute-app-name: play_and_get_digits/.test(command)) continue;
      const timer = setTimeout(() => {
        timers.delete(timer);
        peer.pressDigit(uuid, '1');
      }, delayMs);
      timers.add(timer);
    }
  }, 50);
  run.own({
    stop: async () => {
      clearInterval(scan);
      timers.forEach((timer) => clearTimeout(timer));
    },
  });
}

/** Prints a scenario's figures and writes them to .test-results/chaos/<name>.json. */
export function report(name: string, figures: Record<string, number | string>): void {
  const folder = path.resolve('.test-results', 'chaos');
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, `${name}.json`), `${JSON.stringify({ name, profile: longProfile ? 'long' : 'short', at: new Date().toISOString(), ...figures }, null, 2)}\n`);
  console.log(`chaos ${name} (${longProfile ? 'long' : 'short'} profile): ${Object.entries(figures).map(([key, value]) => `${key} ${value}`).join(', ')}`);
}

/** A reproducible random source: CHAOS_SEED, or a fresh seed that the report prints. */
export function seededRandom(): { seed: number; next: () => number } {
  const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  let state = seed || 1;
  return {
    seed,
    next() {
      // mulberry32
      state = (state + 0x6d2b79f5) | 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}
