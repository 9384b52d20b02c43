/**
 * Smoke alarms turned into phone calls through a real FreeSwitchTelephony, over a real TCP Event
 * Socket, against the test suite's FreeSWITCH (test/support/esl-peer.ts). The whole gateway runs
 * in-process on the system clock: devices and rules are registered, and smoke reported, through
 * the HTTP API; the peer plays each dialled number per its script with small real delays; the
 * tests poll GET /api/v1/alarms/{id} (bounded) until the escalation has done its work.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { FreeSwitchTelephony } from '../../src/telephony/freeswitch/freeswitch-telephony.js';
import { createKey, createTestApp, type TestApp } from '../support/app.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startEslPeer, type CallScript, type EslPeer, type EslPeerOptions, type OriginateRequest } from '../support/esl-peer.js';

const TEMPLATE = 'sofia/gateway/tas/{number}';
const MESSAGE = 'Smoke detected at Main Street 1, kitchen! Press 1 to confirm.';
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const WAIT_MS = 8_000;

// ---- what each dialled number does (numbers are unique across the file) ---------------------

/** Answers, the callee presses 1, hangs up: a confirmed call. */
const ANSWER_ACK: CallScript = { outcome: 'answer', ringMs: 50, answerAfterMs: 120, dtmf: '1', dtmfIntervalMs: 60, hangupAfterMs: 200 };
/** Answers, presses nothing (or a wrong digit), hangs up. */
const ANSWER_NO_ACK: CallScript = { outcome: 'answer', ringMs: 50, answerAfterMs: 100, dtmf: '7', dtmfIntervalMs: 40, hangupAfterMs: 150 };

/** Scripts per number: the n-th originate to a number plays the n-th script (the last one repeats). */
const scripts = new Map<string, CallScript[]>();
const originateCount = new Map<string, number>();

function numberOf(originate: Pick<OriginateRequest, 'dialString'>): string {
  return /^sofia\/gateway\/tas\/(\+[0-9]+)$/.exec(originate.dialString)?.[1] ?? '';
}

function script(number: string, ...plays: CallScript[]): string {
  scripts.set(number, plays);
  return number;
}

function onOriginate(originate: OriginateRequest): CallScript {
  const number = numberOf(originate);
  const index = originateCount.get(number) ?? 0;
  originateCount.set(number, index + 1);
  const plays = scripts.get(number);
  if (!plays) return { outcome: 'fail', cause: 'UNALLOCATED_NUMBER', sipCode: 404 };
  return plays[Math.min(index, plays.length - 1)]!;
}

// ---- the gateway on a peer ------------------------------------------------------------------

interface LogLine {
  level: string;
  obj: object;
  msg: string | undefined;
}

interface Gateway extends TestApp {
  peer: EslPeer;
  telephony: FreeSwitchTelephony;
  webhookKey: string;
  /** What FreeSwitchTelephony logged. */
  logs: LogLine[];
}

/** Every peer of this file (their commands are scanned by the last test). */
const peers: EslPeer[] = [];
/** Every number, caller id and ring timeout the rules of this file were given (as stored). */
const ruleNumbers = new Set<string>();
const ruleCallerIds = new Set<string>();
const ruleRingTimeouts = new Set<number>();

/**
 * One more database, shared by the short-lived gateways (one after the other, each leaving no
 * call pending), so that each does not pay for a fresh database and its migrations.
 */
let spare: TestDatabase | undefined;
async function spareDatabase(): Promise<TestDatabase> {
  spare ??= await createTestDatabase();
  return spare;
}

async function startGateway(
  options: { peer?: Omit<EslPeerOptions, 'onOriginate'>; password?: string; instanceId?: string; database?: TestDatabase } = {},
): Promise<Gateway> {
  const peer = await startEslPeer({ ...options.peer, onOriginate });
  peers.push(peer);
  const logs: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    logs.push({ level, obj, msg });
  };
  const telephony = new FreeSwitchTelephony({
    host: '127.0.0.1',
    port: peer.port,
    password: options.password ?? 'ClueCon',
    dialStringTemplate: TEMPLATE,
    ttsEngine: 'flite',
    ttsVoice: 'kal',
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
    commandTimeoutMs: 1_000,
    connectTimeoutMs: 1_000,
    reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    startWaitMs: 1_000,
    jobFailureGraceMs: 200,
  });
  let t: TestApp;
  try {
    t = await createTestApp(
      {},
      {
        telephony,
        instanceId: options.instanceId ?? 'fs-gateway',
        dispatcher: { pollIntervalMs: 100, notPlacedRetryMs: 100 },
        ...(options.database ? { database: options.database } : {}),
      },
    );
  } catch (error) {
    await telephony.stop();
    await peer.close();
    throw error;
  }
  const webhookKey = await createKey(t, 'webhook');
  return {
    ...t,
    peer,
    telephony,
    webhookKey,
    logs,
    async close() {
      if (options.database) {
        // A shared database: cancel what is still pending, keep the database open.
        const active = (await t.request({ method: 'GET', url: '/api/v1/alarms', query: { status: 'active', limit: '500' } })).json<{ items: { id: string }[] }>();
        for (const alarm of active.items) await t.request({ method: 'POST', url: `/api/v1/alarms/${alarm.id}/cancel` });
        await t.app.close();
      } else {
        await t.close();
      }
      await peer.close();
    },
  };
}

// ---- API helpers ----------------------------------------------------------------------------

interface CallView {
  id: string;
  to: string;
  position: number;
  attempt: number;
  status: string;
  acknowledged: boolean;
  hangup_cause: string | null;
  sip_code: number | null;
  redial_of: string | null;
  dialing_at: string | null;
  ringing_at: string | null;
  answered_at: string | null;
  ended_at: string | null;
}

interface AlarmView {
  id: string;
  status: string;
  correlation_id: string;
  end_reason: string | null;
  calls: CallView[];
}

const finalStatuses = new Set(['completed', 'busy', 'no_answer', 'rejected', 'failed', 'canceled']);

async function sensorWithRule(g: TestApp, deviceId: string, action: Record<string, unknown>): Promise<void> {
  const device = await g.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: deviceId, type: 'sensor_smoke', msisdn: '+79160000001' } });
  expect(device.statusCode, device.body).toBe(201);
  const rule = await g.request({
    method: 'POST',
    url: '/api/v1/rules',
    payload: { name: `smoke at ${deviceId}`, event_type: 'smoke', device_id: deviceId, action: { type: 'call', message: MESSAGE, ...action } },
  });
  expect(rule.statusCode, rule.body).toBe(201);
  const stored = rule.json<{ action: { to: string[]; caller_id: string | null; ring_timeout_s: number } }>().action;
  for (const number of stored.to) ruleNumbers.add(number);
  if (stored.caller_id) ruleCallerIds.add(stored.caller_id);
  ruleRingTimeouts.add(stored.ring_timeout_s);
}

/** Reports smoke; returns the one alarm it started. */
async function smoke(g: Gateway, deviceId: string, eventId: string): Promise<string> {
  const response = await g.request({
    method: 'POST',
    url: '/api/v1/webhooks/events',
    key: g.webhookKey,
    payload: { event_id: eventId, device_id: deviceId, event_type: 'smoke' },
  });
  expect(response.statusCode, response.body).toBe(202);
  const body = response.json<{ status: string; matched_rules: number; alarm_ids: string[] }>();
  expect(body).toMatchObject({ status: 'accepted', matched_rules: 1 });
  expect(body.alarm_ids).toHaveLength(1);
  return body.alarm_ids[0]!;
}

async function getAlarm(g: TestApp, id: string): Promise<AlarmView> {
  const response = await g.request({ method: 'GET', url: `/api/v1/alarms/${id}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<AlarmView>();
}

/** Polls the alarm every 20 ms until `done` holds; fails after `ms`. */
async function waitForAlarm(g: TestApp, id: string, done: (alarm: AlarmView) => boolean, what: string, ms = WAIT_MS): Promise<AlarmView> {
  const deadline = Date.now() + ms;
  for (;;) {
    const alarm = await getAlarm(g, id);
    if (done(alarm)) return alarm;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}; alarm is ${JSON.stringify(summary(alarm))} (${alarm.status})`);
    await sleep(20);
  }
}

/** The alarm has ended and none of its calls is queued or in flight any more. */
function settled(alarm: AlarmView): boolean {
  return alarm.status !== 'active' && alarm.calls.every((call) => finalStatuses.has(call.status));
}

async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const summary = (calls: AlarmView | CallView[]) => (Array.isArray(calls) ? calls : calls.calls).map((call) => `${call.to}#${call.attempt}:${call.status}`);

async function eventTypes(g: TestApp, correlationId: string): Promise<string[]> {
  const log = (await g.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: correlationId, limit: '200' } })).json<{ items: { type: string }[] }>();
  return log.items.map((row) => row.type).reverse();
}

async function eventRows(g: TestApp, correlationId: string, type: string): Promise<{ type: string; status: string; details: Record<string, unknown> }[]> {
  const log = (await g.request({ method: 'GET', url: '/api/v1/event-logs', query: { correlation_id: correlationId, type, limit: '200' } })).json<{
    items: { type: string; status: string; details: Record<string, unknown> }[];
  }>();
  return log.items.reverse();
}

async function readiness(g: TestApp): Promise<{ statusCode: number; body: { status: string; checks: Record<string, { ok: boolean; detail?: string }> } }> {
  const response = await g.request({ method: 'GET', url: '/readyz', key: null });
  return { statusCode: response.statusCode, body: response.json() };
}

/** The sendmsg commands the peer received for a channel, as {app, arg}. */
function sendmsgs(peer: EslPeer, callId: string): { command: string | undefined; app: string | undefined; arg: string | undefined; eventLock: string | undefined }[] {
  return peer.commands
    .filter((block) => block.startsWith(`sendmsg ${callId}\n`))
    .map((block) => {
      const headers = new Map(
        block
          .split('\n')
          .slice(1)
          .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)] as const),
      );
      return { command: headers.get('call-command'), app: headers.get('execute-app-name'), arg: headers.get('execute-app-arg'), eventLock: headers.get('event-lock') };
    });
}

function originatesOf(peer: EslPeer, callId: string): OriginateRequest[] {
  return peer.originates.filter((originate) => originate.variables.tig_call_id === callId);
}

// ---- the tests ------------------------------------------------------------------------------

let g: Gateway;
beforeAll(async () => {
  g = await startGateway();
  expect(g.telephony.status()).toEqual({ ok: true, detail: 'FreeSWITCH Event Socket connected' });
});
afterAll(async () => {
  await g?.close();
  await spare?.close();
});

describe('smoke alarms through FreeSWITCH (Event Socket peer)', () => {
  it('a confirmed call: answered, the message spoken, 1 pressed → alarm resolved, call completed and acknowledged', async () => {
    const to = script('+79165550201', ANSWER_ACK);
    await sensorWithRule(g, 'fs-smoke-ack', { to: [to, '+79165550202'], caller_id: '8 (495) 123-45-67', ring_timeout_s: 25 });
    const alarmId = await smoke(g, 'fs-smoke-ack', 'fs-evt-ack-1');

    const alarm = await waitForAlarm(g, alarmId, settled, 'the alarm to end');
    expect(alarm.status).toBe('resolved');
    expect(alarm.end_reason).toBe(`confirmed by ${to}`);
    expect(summary(alarm)).toEqual([`${to}#1:completed`]);
    const [call] = alarm.calls;
    expect(call).toMatchObject({ acknowledged: true, hangup_cause: 'NORMAL_CLEARING', redial_of: null });
    for (const field of ['dialing_at', 'ringing_at', 'answered_at', 'ended_at'] as const) expect(call![field], field).not.toBeNull();

    // One originate, with our call id as channel uuid and Job-UUID, the rule's number, caller id and ring timeout.
    const [originate, ...others] = originatesOf(g.peer, call!.id);
    expect(others).toEqual([]);
    expect(originate).toMatchObject({ uuid: call!.id, jobUuid: call!.id, dialString: `sofia/gateway/tas/${to}`, application: '&park()' });
    expect(originate!.variables).toMatchObject({ origination_caller_id_number: '+74951234567', originate_timeout: '25', park_timeout: '145', tts_engine: 'flite', tts_voice: 'kal' });
    // Once answered: the rule's message spoken, "press 1" asked, then hang up, in that order, event-locked.
    expect(sendmsgs(g.peer, call!.id)).toEqual([
      { command: 'execute', app: 'speak', arg: `flite|kal|${MESSAGE}`, eventLock: 'true' },
      { command: 'execute', app: 'play_and_get_digits', arg: "1 1 3 5000 # 'say:Press 1 to confirm' silence_stream://250 tig_ack_digit \\d", eventLock: 'true' },
      { command: 'execute', app: 'hangup', arg: 'NORMAL_CLEARING', eventLock: 'true' },
    ]);
    // The second number was never called.
    expect(g.peer.originates.filter((o) => numberOf(o) === '+79165550202')).toEqual([]);

    const types = await eventTypes(g, alarm.correlation_id);
    expect(types).toEqual([
      'event.received',
      'rule.matched',
      'alarm.started',
      'call.queued',
      'call.dialing',
      'call.ringing',
      'call.answered',
      'call.acknowledged',
      'alarm.resolved',
      'call.completed',
    ]);
    const [completed] = await eventRows(g, alarm.correlation_id, 'call.completed');
    expect(completed!.details).toMatchObject({ call_id: call!.id, to, status: 'completed', cause: 'NORMAL_CLEARING', acknowledged: true });
  });

  it('answered without the digit (require_ack): retried per `attempts` after retry_delay_s, then the next number', async () => {
    const silent = script('+79165550211', ANSWER_NO_ACK);
    const confirms = script('+79165550212', ANSWER_ACK);
    await sensorWithRule(g, 'fs-smoke-noack', { to: [silent, confirms], attempts: 2, retry_delay_s: 1, require_ack: true });
    const alarmId = await smoke(g, 'fs-smoke-noack', 'fs-evt-noack-1');

    const alarm = await waitForAlarm(g, alarmId, settled, 'the alarm to end');
    expect(alarm.status).toBe('resolved');
    expect(summary(alarm)).toEqual([`${silent}#1:completed`, `${silent}#2:completed`, `${confirms}#1:completed`]);
    expect(alarm.calls.map((call) => call.acknowledged)).toEqual([false, false, true]);
    // The retry waited retry_delay_s after the first attempt ended; the next number was called at once.
    const [first, second, third] = alarm.calls;
    expect(Date.parse(second!.dialing_at!) - Date.parse(first!.ended_at!)).toBeGreaterThanOrEqual(1_000);
    expect(Date.parse(third!.dialing_at!) - Date.parse(second!.ended_at!)).toBeLessThan(1_000);
    // Each unconfirmed answer was asked for the digit (and got a 7, which is not a confirmation).
    for (const call of alarm.calls) {
      expect(sendmsgs(g.peer, call.id).map((m) => m.app)).toEqual(['speak', 'play_and_get_digits', 'hangup']);
      expect(originatesOf(g.peer, call.id)).toHaveLength(1);
    }
    const completed = await eventRows(g, alarm.correlation_id, 'call.completed');
    expect(completed.map((row) => [row.details.to, row.details.attempt, row.details.acknowledged])).toEqual([
      [silent, 1, false],
      [silent, 2, false],
      [confirms, 1, true],
    ]);
  });

  it('busy, no answer, declined and failed calls: statuses, causes and SIP codes; a decline is not retried', async () => {
    const rejects = script('+79165550221', { outcome: 'fail', cause: 'CALL_REJECTED', sipCode: 603, afterMs: 60 });
    const busy = script('+79165550222', { outcome: 'fail', cause: 'USER_BUSY', sipCode: 486, afterMs: 60 });
    const noAnswer = script('+79165550223', { outcome: 'fail', cause: 'NO_ANSWER', afterMs: 80 });
    const fails = script('+79165550224', { outcome: 'fail', cause: 'NORMAL_TEMPORARY_FAILURE', sipCode: 503, afterMs: 50, jobBeforeHangupComplete: true });
    const confirms = script('+79165550225', ANSWER_ACK);
    await sensorWithRule(g, 'fs-smoke-failures', { to: [rejects, busy, noAnswer, fails, confirms], attempts: 2, retry_delay_s: 0 });
    const alarmId = await smoke(g, 'fs-smoke-failures', 'fs-evt-failures-1');

    const alarm = await waitForAlarm(g, alarmId, settled, 'the alarm to end');
    expect(alarm.status).toBe('resolved');
    expect(summary(alarm)).toEqual([
      `${rejects}#1:rejected`,
      `${busy}#1:busy`,
      `${busy}#2:busy`,
      `${noAnswer}#1:no_answer`,
      `${noAnswer}#2:no_answer`,
      `${fails}#1:failed`,
      `${fails}#2:failed`,
      `${confirms}#1:completed`,
    ]);
    const byTo = (to: string) => alarm.calls.filter((call) => call.to === to);
    expect(byTo(rejects).map((c) => [c.hangup_cause, c.sip_code])).toEqual([['CALL_REJECTED', 603]]);
    expect(byTo(busy).map((c) => [c.hangup_cause, c.sip_code])).toEqual([
      ['USER_BUSY', 486],
      ['USER_BUSY', 486],
    ]);
    expect(byTo(noAnswer).map((c) => [c.hangup_cause, c.sip_code])).toEqual([
      ['NO_ANSWER', null],
      ['NO_ANSWER', null],
    ]);
    expect(byTo(fails).map((c) => [c.hangup_cause, c.sip_code])).toEqual([
      ['NORMAL_TEMPORARY_FAILURE', 503],
      ['NORMAL_TEMPORARY_FAILURE', 503],
    ]);
    // A ringing state was seen only where the switch reported ringing.
    expect(byTo(noAnswer).every((c) => c.ringing_at !== null)).toBe(true);
    expect(byTo(busy).every((c) => c.ringing_at === null && c.answered_at === null)).toBe(true);
    // The switch was asked exactly that often per number: the decline once.
    const dialedTo = (to: string) => g.peer.originates.filter((o) => numberOf(o) === to).length;
    expect([rejects, busy, noAnswer, fails, confirms].map(dialedTo)).toEqual([1, 2, 2, 2, 1]);

    const failed = await eventRows(g, alarm.correlation_id, 'call.failed');
    expect(failed.map((row) => [row.details.to, row.details.status, row.details.cause, row.details.sip_code, row.status])).toEqual([
      [rejects, 'rejected', 'CALL_REJECTED', 603, 'failed'],
      [busy, 'busy', 'USER_BUSY', 486, 'failed'],
      [busy, 'busy', 'USER_BUSY', 486, 'failed'],
      [noAnswer, 'no_answer', 'NO_ANSWER', null, 'failed'],
      [noAnswer, 'no_answer', 'NO_ANSWER', null, 'failed'],
      [fails, 'failed', 'NORMAL_TEMPORARY_FAILURE', 503, 'failed'],
      [fails, 'failed', 'NORMAL_TEMPORARY_FAILURE', 503, 'failed'],
    ]);
  });

  describe('with a wrong Event Socket password', () => {
    let bad: Gateway;
    beforeAll(async () => {
      bad = await startGateway({ password: 'not-the-password', instanceId: 'fs-gateway-badauth', database: await spareDatabase() });
    });
    afterAll(async () => {
      await bad?.close();
    });

    it('/readyz says 503 (telephony); smoke is still accepted (202) and its call waits, queued, dialling nobody', async () => {
      const ready = await readiness(bad);
      expect(ready.statusCode).toBe(503);
      expect(ready.body.status).toBe('not_ready');
      expect(ready.body.checks.database).toMatchObject({ ok: true });
      expect(ready.body.checks.telephony).toEqual({ ok: false, detail: expect.stringMatching(/^FreeSWITCH refused the Event Socket password; disconnected since \d{4}-/) });

      const to = script('+79165550231', ANSWER_ACK);
      await sensorWithRule(bad, 'fs-smoke-badauth', { to: [to] });
      const alarmId = await smoke(bad, 'fs-smoke-badauth', 'fs-evt-badauth-1');
      // Several poll intervals (100 ms) and reconnect attempts pass: nothing is dialled, nothing fails.
      await sleep(500);
      const alarm = await getAlarm(bad, alarmId);
      expect(alarm.status).toBe('active');
      expect(summary(alarm)).toEqual([`${to}#1:queued`]);
      expect(alarm.calls[0]!.dialing_at).toBeNull();
      expect(bad.peer.originates).toEqual([]);
      // The client keeps trying (with backoff), and never gets past `auth`.
      expect(bad.peer.commands.filter((block) => block.startsWith('auth ')).length).toBeGreaterThan(1);
      expect(bad.peer.commands.every((block) => block.startsWith('auth '))).toBe(true);
      expect(bad.peer.authenticatedConnections()).toBe(0);
      expect((await readiness(bad)).statusCode).toBe(503);
      // The password never reaches a log line.
      expect(JSON.stringify(bad.logs)).not.toContain('not-the-password');
    });

    // While the switch is down and a call is due, the dispatcher waits for the poll interval or the
    // reconnection instead of re-arming a wake timer for the past due time (which used to spin).
    it('does not busy-loop while the call waits for the switch (about one pass per poll interval)', async () => {
      const to = script('+79165550232', ANSWER_ACK);
      await sensorWithRule(bad, 'fs-smoke-badauth-spin', { to: [to] });
      await smoke(bad, 'fs-smoke-badauth-spin', 'fs-evt-badauth-spin-1');
      const kick = vi.spyOn(bad.app.services.dispatcher, 'kick');
      onTestFinished(() => kick.mockRestore());
      await sleep(50);
      kick.mockClear();
      await sleep(500);
      // Poll interval 100 ms: about 5 passes; allow four times that.
      expect(kick.mock.calls.length).toBeLessThan(20);
    });
  });

  it('the Event Socket connection drops while a call rings: reconnected, the live call reconciled and kept (not re-dialled), it ends normally', async () => {
    const to = script('+79165550241', { outcome: 'answer', ringMs: 30, answerAfterMs: 800, dtmf: '1', dtmfIntervalMs: 50, hangupAfterMs: 150 });
    await sensorWithRule(g, 'fs-smoke-drop', { to: [to, '+79165550242'] });
    const alarmId = await smoke(g, 'fs-smoke-drop', 'fs-evt-drop-1');
    const ringing = await waitForAlarm(g, alarmId, (a) => a.calls[0]?.status === 'ringing', 'the call to ring');
    const callId = ringing.calls[0]!.id;
    const commandsBefore = g.peer.commands.length;
    const reconnected = () => g.logs.filter((line) => line.msg === 'FreeSWITCH Event Socket reconnected; reconciling calls in flight').length;
    const reconnectsBefore = reconnected();

    const droppedAt = Date.now();
    g.peer.dropConnections();
    await waitFor(
      () => reconnected() > reconnectsBefore && g.telephony.status().ok && g.peer.authenticatedConnections() === 1,
      'the client to reconnect by itself',
    );
    expect(g.peer.commands.slice(commandsBefore).filter((block) => block.startsWith('auth '))).toHaveLength(1);
    // The gateway asked the switch about the call (it still has the channel) rather than dial again.
    await waitFor(() => g.peer.commands.slice(commandsBefore).includes(`api uuid_exists ${callId}`), 'the reconciliation');
    expect(g.peer.liveChannels()).toContain(callId);

    const alarm = await waitForAlarm(g, alarmId, settled, 'the alarm to end');
    expect(alarm.status).toBe('resolved');
    expect(summary(alarm)).toEqual([`${to}#1:completed`]);
    expect(alarm.calls[0]).toMatchObject({ id: callId, acknowledged: true, redial_of: null, hangup_cause: 'NORMAL_CLEARING' });
    // It was still ringing when the connection dropped: its answer came over the new connection.
    expect(Date.parse(alarm.calls[0]!.answered_at!)).toBeGreaterThanOrEqual(droppedAt - 5);
    // Answered on the new connection: driven as usual.
    expect(sendmsgs(g.peer, callId).map((m) => m.app)).toEqual(['speak', 'play_and_get_digits', 'hangup']);
    // Exactly one originate for this call, none to anyone else.
    expect(originatesOf(g.peer, callId)).toHaveLength(1);
    expect(g.peer.originates.filter((o) => numberOf(o) === to)).toHaveLength(1);
    const types = await eventTypes(g, alarm.correlation_id);
    expect(types.filter((type) => type === 'call.dialing')).toHaveLength(1);
    expect(types).not.toContain('call.failed');
  });

  it('the switch unreachable for a while: /readyz reports telephony down; the smoke call waits, queued, and is placed after the reconnection', async () => {
    const to = script('+79165550251', ANSWER_ACK);
    await sensorWithRule(g, 'fs-smoke-outage', { to: [to] });
    g.peer.pause();
    g.peer.dropConnections();
    await waitFor(() => !g.telephony.status().ok, 'the client to notice the outage', 1_000);

    const down = await readiness(g);
    expect(down.statusCode).toBe(503);
    expect(down.body.checks.database).toMatchObject({ ok: true });
    expect(down.body.checks.telephony).toEqual({ ok: false, detail: expect.stringMatching(/^FreeSWITCH Event Socket disconnected since \d{4}-/) });

    const originatesBefore = g.peer.originates.length;
    const alarmId = await smoke(g, 'fs-smoke-outage', 'fs-evt-outage-1');
    await sleep(400);
    const waiting = await getAlarm(g, alarmId);
    expect(waiting.status).toBe('active');
    expect(summary(waiting)).toEqual([`${to}#1:queued`]);
    expect((await readiness(g)).statusCode).toBe(503);
    expect(g.peer.originates.length).toBe(originatesBefore);

    const resumedAt = Date.now();
    g.peer.resume();
    await waitFor(async () => (await readiness(g)).statusCode === 200, '/readyz to be ready again');
    const alarm = await waitForAlarm(g, alarmId, settled, 'the alarm to end');
    expect(alarm.status).toBe('resolved');
    expect(summary(alarm)).toEqual([`${to}#1:completed`]);
    expect(alarm.calls[0]!.acknowledged).toBe(true);
    expect(Date.parse(alarm.calls[0]!.dialing_at!)).toBeGreaterThanOrEqual(resumedAt);
    expect(originatesOf(g.peer, alarm.calls[0]!.id)).toHaveLength(1);
  });

  it('works when every reply and event arrives split across TCP packets', async () => {
    const split = await startGateway({ peer: { splitWrites: true }, instanceId: 'fs-gateway-split', database: await spareDatabase() });
    onTestFinished(() => split.close());
    const busy = script('+79165550261', { outcome: 'fail', cause: 'USER_BUSY', sipCode: 486, afterMs: 60 });
    const to = script('+79165550262', ANSWER_ACK);
    await sensorWithRule(split, 'fs-smoke-split', { to: [busy, to], attempts: 1 });
    const alarmId = await smoke(split, 'fs-smoke-split', 'fs-evt-split-1');
    const alarm = await waitForAlarm(split, alarmId, settled, 'the alarm to end');
    expect(alarm.status).toBe('resolved');
    expect(summary(alarm)).toEqual([`${busy}#1:busy`, `${to}#1:completed`]);
    expect(alarm.calls[0]!.sip_code).toBe(486);
    expect(alarm.calls[1]!.acknowledged).toBe(true);
    expect(sendmsgs(split.peer, alarm.calls[1]!.id).map((m) => m.app)).toEqual(['speak', 'play_and_get_digits', 'hangup']);
    expect(split.peer.originates).toHaveLength(2);
  });
});

describe('dial-string safety', () => {
  /** "Numbers" that could change the meaning of an originate line; each must be refused with 422. */
  const HOSTILE: [label: string, value: string][] = [
    ['open brace', '+7916{1234567'],
    ['close brace', '+79161234567}'],
    ['variable block', '{origination_uuid=x}+79161234567'],
    ['open bracket', '[leg_timeout=1]+79161234567'],
    ['close bracket', '+79161234567]'],
    ['angle brackets', '<x=1>+79161234567'],
    ['comma', '+79161234567,+79161234568'],
    ['pipe', '+79161234567|+79161234568'],
    ['ampersand', '+79161234567&park()'],
    ['single quote', "'+79161234567'"],
    ['double quote', '"+79161234567"'],
    ['backslash', '+7916\\1234567'],
    ['application after a space', '+79161234567 &bridge(user/1000)'],
    ['spaces inside a bad number', '+7 916 123 45 67 x'],
    ['newline inside', '+7916\n1234567'],
    ['header injection', '+79161234567\ncall-command: hangup'],
    ['carriage return inside', '+7916\r1234567'],
    ['NUL', '+79161234567\u0000'],
    ['variable expansion', '${x}'],
    ['api expansion', '+7916${system(id)}'],
    ['global variable', '$${domain}'],
    ['dial string', 'sofia/gateway/x/1'],
    ['enterprise originate', '+79161234567:_:+79161234568'],
    ['semicolon parameters', '+79161234567;ext=1'],
    ['at sign', '+79161234567@evil.example'],
    ['sip uri', 'sip:+79161234567'],
    ['16 digits', '+1234567890123456'],
    ['letters', '+7916ABCDEFG'],
    ['fullwidth digits', '+\uff17\uff19\uff11\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17'],
    ['right-to-left override', '\u202e+79161234567'],
    ['empty', ''],
  ];

  it(`refuses ${HOSTILE.length} hostile numbers in a rule's action.to and caller_id with 422, storing nothing`, async () => {
    const rulesBefore = (await g.request({ method: 'GET', url: '/api/v1/rules', query: { limit: '500' } })).json<{ items: unknown[] }>().items.length;
    const device = await g.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'fs-smoke-hostile', type: 'sensor_smoke', msisdn: '+79160000001' } });
    expect(device.statusCode, device.body).toBe(201);
    const post = (action: Record<string, unknown>) =>
      g.request({ method: 'POST', url: '/api/v1/rules', payload: { name: 'hostile', event_type: 'smoke', device_id: 'fs-smoke-hostile', action: { type: 'call', message: MESSAGE, ...action } } });
    const refusals: string[] = [];
    for (const [label, value] of HOSTILE) {
      for (const [field, action] of [
        ['body.action.to.0', { to: [value] }],
        ['body.action.to.1', { to: ['+79165550299', value] }],
        ['body.action.caller_id', { to: ['+79165550299'], caller_id: value }],
      ] as const) {
        const response = await post(action);
        const problem = response.json<{ errors?: { field: string }[] }>();
        // Refused, naming the offending field.
        if (response.statusCode !== 422 || !problem.errors?.some((error) => error.field === field)) {
          refusals.push(`${label} as ${field}: ${response.statusCode} ${response.body}`);
        }
      }
    }
    expect(refusals).toEqual([]);
    // A message that could inject a header or expand a variable is refused the same way.
    for (const message of ['Fire\ncall-command: hangup', 'Fire ${system(id)}', "Fire 'x'", 'Fire {x}', 'Fire | x', 'Fire & x']) {
      expect((await post({ to: ['+79165550299'], message })).statusCode, JSON.stringify(message)).toBe(422);
    }
    let rulesAfter = (await g.request({ method: 'GET', url: '/api/v1/rules', query: { limit: '500' } })).json<{ items: unknown[] }>().items.length;
    expect(rulesAfter).toBe(rulesBefore);
    // The same request with honest spellings is accepted, and stored as strict E.164.
    const good = await post({ to: ['8 (916) 555-02-99'], caller_id: 'tel:+7 495 123-45-67' });
    expect(good.statusCode, good.body).toBe(201);
    expect(good.json<{ action: unknown }>().action).toMatchObject({ to: ['+79165550299'], caller_id: '+74951234567' });
    rulesAfter = (await g.request({ method: 'GET', url: '/api/v1/rules', query: { limit: '500' } })).json<{ items: unknown[] }>().items.length;
    expect(rulesAfter).toBe(rulesBefore + 1);
  });

  it('every originate any peer of this file received is exactly the fixed variable block and the template around a rule number', async (ctx) => {
    const originates = peers.flatMap((peer) => peer.commands.filter((block) => block.startsWith('bgapi originate')));
    if (originates.length === 0) ctx.skip();
    const shape = new RegExp(
      `^bgapi originate \\{origination_uuid=(${UUID}),tig_call_id=\\1,(?:origination_caller_id_number=(\\+[1-9][0-9]{6,14}),)?` +
        'originate_timeout=([0-9]{1,3}),ignore_early_media=true,park_timeout=([0-9]{1,3}),tts_engine=flite,tts_voice=kal\\}' +
        'sofia/gateway/tas/(\\+[1-9][0-9]{6,14}) &park\\(\\)$',
    );
    const uuids = new Set<string>();
    for (const block of originates) {
      const [line = '', ...headers] = block.split('\n');
      const match = shape.exec(line);
      expect(match, line).not.toBeNull();
      const [, uuid, callerId, ringTimeout, parkTimeout, number] = match!;
      expect(headers).toEqual([`Job-UUID: ${uuid}`]);
      expect(ruleRingTimeouts.has(Number(ringTimeout)), ringTimeout).toBe(true);
      expect(Number(parkTimeout)).toBe(Number(ringTimeout) + 120);
      expect(ruleNumbers.has(number!), number).toBe(true);
      if (callerId !== undefined) expect(ruleCallerIds.has(callerId), callerId).toBe(true);
      // A call id is dialled once: a re-dial would be a new call with a new id.
      expect(uuids.has(uuid!), uuid).toBe(false);
      uuids.add(uuid!);
    }
    // The calls the main gateway placed are exactly the calls it recorded, to the number recorded.
    const calls = (await g.request({ method: 'GET', url: '/api/v1/calls', query: { limit: '500' } })).json<{ items: CallView[] }>().items;
    const dialled = calls.filter((call) => call.dialing_at !== null);
    expect(new Set(g.peer.originates.map((o) => `${o.uuid} ${numberOf(o)}`))).toEqual(new Set(dialled.map((call) => `${call.id} ${call.to}`)));
  });
});
