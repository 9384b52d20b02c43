/**
 * No secret ever reaches a log line or the event log, and API keys are hashed at rest. A whole
 * realistic run goes through the gateway with the production logger (src/server.ts createLogger,
 * with its redaction) at level trace, writing JSON lines into memory: API keys of every role
 * (sent as X-API-Key and as Bearer, right and wrong), the Standard Webhooks secret of device
 * events, speaker signing secrets (created and rotated), and the FreeSWITCH Event Socket password
 * (a real FreeSwitchTelephony against the protocol-level peer, plus one with a wrong password).
 * Then every captured line, every event_logs row and every other table are searched for each
 * secret.
 */
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { hashApiKey } from '../../src/api-keys/api-key-secrets.js';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createLogger, createTelephony } from '../../src/server.js';
import { FreeSwitchTelephony } from '../../src/telephony/freeswitch/freeswitch-telephony.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startEslPeer, type EslPeer } from '../support/esl-peer.js';
import { SpeakerReceivers } from '../support/speaker-receivers.js';

const secrets = {
  adminKey: `env-admin-${randomBytes(24).toString('base64url')}`,
  eslPassword: `esl-${randomBytes(12).toString('hex')}`,
  wrongEslPassword: `wrong-esl-${randomBytes(12).toString('hex')}`,
  webhookSecretBytes: randomBytes(32).toString('base64'),
};
const webhookSecret = `whsec_${secrets.webhookSecretBytes}`;
/** Secrets learnt during the run (created keys, speaker secrets). */
const learnt: Record<string, string> = {};

const lines: string[] = [];
const capture = new Writable({
  write(chunk: Buffer, _encoding, done) {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  },
});

let database: TestDatabase;
let peer: EslPeer;
let receivers: SpeakerReceivers;
let app: FastifyInstance;
let config: Config;

beforeAll(async () => {
  database = await createTestDatabase();
  peer = await startEslPeer({ password: secrets.eslPassword, onOriginate: () => ({ outcome: 'answer', ringMs: 20, answerAfterMs: 60, dtmf: '1', dtmfIntervalMs: 30, hangupAfterMs: 150 }) });
  receivers = await SpeakerReceivers.start();
  config = loadConfig({
    ADMIN_API_KEY: secrets.adminKey,
    WEBHOOK_SIGNING_SECRET: webhookSecret,
    FREESWITCH_ESL_URL: `tcp://127.0.0.1:${peer.port}`,
    FREESWITCH_ESL_PASSWORD: secrets.eslPassword,
    OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
    LOG_LEVEL: 'trace',
    LOG_FORMAT: 'json',
  });
  const logger = createLogger(config, capture);
  app = await buildApp({ config, storage: database.storage, logger, telephony: createTelephony(config, logger), instanceId: 'secrets-run' });
  await app.ready();
});
afterAll(async () => {
  await app?.close();
  await receivers?.close();
  await peer?.close();
  await database?.close();
});

type Send = { method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: string; payload?: object | string; headers?: Record<string, string> };
const send = (request: Send) => app.inject(request);
const as = (key: string, bearer = false): Record<string, string> => (bearer ? { authorization: `Bearer ${key}` } : { 'x-api-key': key });

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a full run with every kind of secret configured, logged at trace', () => {
  it('runs the whole story: keys, speakers, a signed smoke alarm called through FreeSWITCH, an announced call, refusals', async () => {
    const admin = as(secrets.adminKey);
    for (const role of ['webhook', 'telephony', 'admin'] as const) {
      const created = await send({ method: 'POST', url: '/api/v1/api-keys', headers: as(secrets.adminKey, role === 'admin'), payload: { role, name: `${role} key` } });
      expect(created.statusCode).toBe(201);
      learnt[`${role}Key`] = created.json<{ key: string }>().key;
    }
    const speaker = await send({ method: 'POST', url: '/api/v1/devices', headers: admin, payload: { device_id: 'kitchen', type: 'speaker', msisdn: '+79161234567', endpoint: `${receivers.baseUrl}/speakers/kitchen` } });
    expect(speaker.statusCode).toBe(201);
    learnt.speakerSecret = speaker.json<{ signing_secret: string }>().signing_secret;
    const rotated = await send({ method: 'POST', url: '/api/v1/devices/kitchen/rotate-secret', headers: as(learnt.adminKey!) });
    learnt.rotatedSpeakerSecret = rotated.json<{ signing_secret: string }>().signing_secret;
    receivers.add('kitchen', learnt.rotatedSpeakerSecret);

    expect((await send({ method: 'POST', url: '/api/v1/devices', headers: admin, payload: { device_id: 'hall-smoke', type: 'sensor_smoke', msisdn: '+79161234567' } })).statusCode).toBe(201);
    const rule = await send({ method: 'POST', url: '/api/v1/rules', headers: admin, payload: { name: 'Smoke', event_type: 'smoke', device_id: 'hall-smoke', action: { type: 'call', to: ['+79160000042'], message: 'Smoke in the hall' } } });
    expect(rule.statusCode).toBe(201);

    const body = JSON.stringify({ event_id: 'secret-run-1', device_id: 'hall-smoke', event_type: 'smoke' });
    const at = new Date();
    const signature = new Webhook(webhookSecret).sign('msg_secret_run_1', at, body);
    const signedHeaders = { 'content-type': 'application/json', 'webhook-id': 'msg_secret_run_1', 'webhook-timestamp': String(Math.floor(at.getTime() / 1000)), 'webhook-signature': signature };
    const smoke = await send({ method: 'POST', url: '/api/v1/webhooks/events', headers: { ...as(learnt.webhookKey!, true), ...signedHeaders }, payload: body });
    expect(smoke.statusCode, smoke.body).toBe(202);
    const alarmId = smoke.json<{ alarm_ids: string[] }>().alarm_ids[0]!;

    const call = { call_id: 'secret-call-1', caller: '+74951234567', callee: '+79161234567' };
    expect((await send({ method: 'POST', url: '/api/v1/incoming-calls', headers: as(learnt.telephonyKey!), payload: call })).statusCode).toBe(202);
    // (A speaker whose ringing was not yet attempted when the call ends is told nothing: wait for it.)
    await until('the ringing notification', async () => (receivers.get('kitchen').delivered.length >= 1 ? true : undefined), 30_000);
    expect((await send({ method: 'POST', url: '/api/v1/incoming-calls', headers: as(learnt.telephonyKey!), payload: { ...call, state: 'ended' } })).statusCode).toBe(202);

    // Refusals, each of which logs something about the request.
    const nearMiss = `${secrets.adminKey.slice(0, -1)}${secrets.adminKey.endsWith('A') ? 'B' : 'A'}`;
    learnt.nearMissKey = nearMiss;
    expect((await send({ method: 'GET', url: '/api/v1/devices', headers: as(nearMiss) })).statusCode).toBe(401);
    expect((await send({ method: 'GET', url: '/api/v1/devices', headers: as(learnt.webhookKey!, true) })).statusCode).toBe(403);
    expect((await send({ method: 'POST', url: '/api/v1/webhooks/events', headers: { ...as(learnt.webhookKey!), ...signedHeaders, 'webhook-signature': 'v1,AAAA' }, payload: body })).statusCode).toBe(401);
    expect((await send({ method: 'POST', url: '/api/v1/webhooks/events', headers: { ...as(learnt.webhookKey!), ...signedHeaders }, payload: body })).statusCode).toBe(409);
    expect((await send({ method: 'POST', url: '/api/v1/api-keys', headers: admin, payload: { role: 'root', name: learnt.webhookKey } })).statusCode).toBe(422);

    // A switch connection with a wrong password: refused, and logged as such.
    const wrong = new FreeSwitchTelephony({ host: '127.0.0.1', port: peer.port, password: secrets.wrongEslPassword, dialStringTemplate: config.FREESWITCH_DIAL_STRING, ttsEngine: 'flite', ttsVoice: 'kal', logger: createLogger(config, capture).child({ component: 'wrong-password' }), startWaitMs: 500, connectTimeoutMs: 500 });
    await wrong.start().catch(() => {});
    await wrong.stop();

    const alarm = await until('the alarm to be confirmed', async () => {
      const response = await send({ method: 'GET', url: `/api/v1/alarms/${alarmId}`, headers: admin });
      return response.json<{ status: string }>().status === 'resolved' ? response.json() : undefined;
    });
    expect(alarm).toMatchObject({ status: 'resolved' });
    const kitchen = receivers.get('kitchen');
    await until('both speaker notifications', async () => (kitchen.delivered.length >= 2 ? true : undefined), 30_000).catch(async (error: Error) => {
      const rows = await database.storage.db.selectFrom('notifications').select(['type', 'status', 'attempts', 'last_error']).execute();
      throw new Error(`${error.message}: received ${kitchen.requests.length}, bad signatures ${kitchen.badSignatures}, rows ${JSON.stringify(rows)}`);
    });
    expect(peer.originates.length).toBeGreaterThanOrEqual(1);
  });

  it('wrote a real trace: requests, the Event Socket and deliveries are in the captured log', () => {
    // (The gateway writes nothing at trace itself; the lowest level it uses is debug.)
    expect(lines.length).toBeGreaterThan(30);
    const text = lines.join('\n');
    expect(text).toContain('"level":20');
    for (const message of ['request received', 'ESL command sent', 'Originate accepted by FreeSWITCH', 'FreeSWITCH refused the Event Socket password']) expect(text).toContain(message);
  });

  it('no secret appears in any log line, any event_logs row, or any table but where it must be kept', async () => {
    const all = { ...secrets, webhookSecret, ...learnt };
    const logText = lines.join('\n');
    const eventLog = JSON.stringify(await database.storage.db.selectFrom('event_logs').selectAll().execute());
    expect(eventLog.length).toBeGreaterThan(1000);
    const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(database.storage.db);
    const dumps: Record<string, string> = {};
    for (const { table_name: table } of tables.rows) {
      // Speakers' signing secrets must be kept to sign with: the devices table is searched without that column.
      const rows = await sql<{ row: string }>`select row_to_json(t)::text as row from ${sql.table(table)} t`.execute(database.storage.db);
      dumps[table] = rows.rows
        .map(({ row }) => {
          const parsed = JSON.parse(row) as Record<string, unknown>;
          if (table === 'devices') delete parsed.signing_secret;
          return JSON.stringify(parsed);
        })
        .join('\n');
    }
    expect(Object.keys(dumps)).toEqual(expect.arrayContaining(['api_keys', 'event_logs', 'devices', 'webhook_messages', 'notifications']));
    let searched = 0;
    for (const [name, secret] of Object.entries(all)) {
      expect(secret.length, name).toBeGreaterThanOrEqual(16);
      expect(logText.includes(secret), `${name} in the log`).toBe(false);
      expect(eventLog.includes(secret), `${name} in event_logs`).toBe(false);
      for (const [table, dump] of Object.entries(dumps)) expect(dump.includes(secret), `${name} in table ${table}`).toBe(false);
      searched++;
    }
    console.log(`secrets: ${searched} secrets searched in ${lines.length} log lines (level trace), ${eventLog.length} bytes of event_logs and ${Object.keys(dumps).length} tables: none found`);
  });

  it('keeps API keys only as their SHA-256', async () => {
    const rows = await database.storage.db.selectFrom('api_keys').selectAll().execute();
    expect(rows).toHaveLength(3);
    for (const role of ['webhook', 'telephony', 'admin'] as const) {
      const key = learnt[`${role}Key`]!;
      const row = rows.find((candidate) => candidate.role === role)!;
      expect(row.key_hash.equals(hashApiKey(key))).toBe(true);
      expect(key.startsWith(row.key_prefix)).toBe(true);
      expect(row.key_prefix.length).toBeLessThan(16);
    }
  });
});
