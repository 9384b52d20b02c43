import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ManualClock } from '../../src/clock/clock.js';
import {
  FreeSwitchTelephony,
  type FreeSwitchTelephonyOptions,
} from '../../src/telephony/freeswitch/freeswitch-telephony.js';
import {
  assertSafeMessage,
  buildOriginateCommand,
  UnsafeDialInputError,
} from '../../src/telephony/freeswitch/originate-command.js';
import {
  CallNotPlacedError,
  CallOutcomeUnknownError,
  type CallProgress,
  type CallRequest,
} from '../../src/telephony/telephony.js';
import { startEslPeer, type CallScript, type EslPeer, type EslPeerOptions } from '../support/esl-peer.js';
import { testLogger } from '../support/test-logger.js';

const FIXTURES = path.resolve(import.meta.dirname, '../fixtures/freeswitch-esl');
const TEMPLATE = 'sofia/gateway/tas/{number}';
const SETTINGS = { dialStringTemplate: TEMPLATE, ttsEngine: 'flite', ttsVoice: 'kal' };
const WAIT_MS = 3000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Every command every peer of this file received (scanned by the last test). */
const allPeerCommands: string[] = [];

// ---- helpers --------------------------------------------------------------------------------

/** Polls `predicate` every 5 ms; fails after `ms`. */
async function waitFor(predicate: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

let numberSeq = 0;
function nextNumber(): string {
  numberSeq += 1;
  return `+49151123${String(numberSeq).padStart(5, '0')}`;
}

function callRequest(overrides: Partial<CallRequest> = {}): CallRequest {
  return {
    callId: randomUUID(),
    to: nextNumber(),
    callerId: '+4930901820',
    ringTimeoutS: 30,
    message: 'Smoke alarm in the kitchen at Main Street 1. Please check now.',
    requireAck: true,
    correlationId: `corr-${randomUUID()}`,
    ...overrides,
  };
}

/** A peer whose calls follow `scripts` (by our tig_call_id); unknown calls answer and stay up. */
async function peerFor(options: Omit<EslPeerOptions, 'onOriginate'> = {}) {
  const scripts = new Map<string, CallScript>();
  const peer = await startEslPeer({
    ...options,
    onOriginate: (call) => scripts.get(call.variables.tig_call_id ?? '') ?? { outcome: 'answer' },
  });
  onTestFinished(async () => {
    allPeerCommands.push(...peer.commands);
    await peer.close();
  });
  return { peer, scripts };
}

function telephonyFor(peer: EslPeer, overrides: Partial<FreeSwitchTelephonyOptions> = {}) {
  const { lines, logger } = testLogger();
  const telephony = new FreeSwitchTelephony({
    host: '127.0.0.1',
    port: peer.port,
    password: 'ClueCon',
    ...SETTINGS,
    logger,
    commandTimeoutMs: 2000,
    connectTimeoutMs: 2000,
    reconnect: { initialDelayMs: 10, maxDelayMs: 40 },
    startWaitMs: 2000,
    ...overrides,
  });
  const progress: CallProgress[] = [];
  telephony.onProgress((p) => progress.push(p));
  onTestFinished(() => telephony.stop());
  const of = (callId: string) => progress.filter((p) => p.callId === callId);
  const kinds = (callId: string) => of(callId).map((p) => p.kind);
  const endedOf = (callId: string) => of(callId).filter((p): p is Extract<CallProgress, { kind: 'ended' }> => p.kind === 'ended');
  const waitEnded = async (callId: string) => {
    await waitFor(() => endedOf(callId).length > 0, `ended of ${callId}`);
    return endedOf(callId)[0]!;
  };
  /**
   * Events reach us in the order the peer wrote them: once a marker event injected now has been
   * processed, every event the peer sent before it has been too.
   */
  const flushEvents = async () => {
    const marker = randomUUID();
    peer.emitEvent('CHANNEL_PROGRESS', { 'Unique-ID': marker, variable_tig_call_id: marker });
    await waitFor(() => of(marker).length > 0, 'the marker event');
  };
  return { telephony, progress, lines, of, kinds, endedOf, waitEnded, flushEvents };
}

async function started(peer: EslPeer, overrides: Partial<FreeSwitchTelephonyOptions> = {}) {
  const t = telephonyFor(peer, overrides);
  await t.telephony.start();
  expect(t.telephony.status()).toEqual({ ok: true, detail: 'FreeSWITCH Event Socket connected' });
  return t;
}

/** The sendmsg commands the peer received for `callId`, as {app, arg, eventLock}. */
function sendmsgs(peer: EslPeer, callId: string) {
  return peer.commands
    .filter((block) => block.startsWith(`sendmsg ${callId}\n`))
    .map((block) => {
      const headers = Object.fromEntries(
        block
          .split('\n')
          .slice(1)
          .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 2)]),
      );
      return { command: headers['call-command'], app: headers['execute-app-name'], arg: headers['execute-app-arg'], eventLock: headers['event-lock'] };
    });
}

function originatesOf(peer: EslPeer, callId: string) {
  return peer.originates.filter((o) => o.variables.tig_call_id === callId);
}

function expectRecent(at: Date): void {
  expect(at).toBeInstanceOf(Date);
  expect(Math.abs(at.getTime() - Date.now())).toBeLessThan(60_000);
}

/** Deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- the originate command ------------------------------------------------------------------

/** Values that must never reach a dial string or the caller id. */
const HOSTILE_NUMBERS: Array<[label: string, value: unknown]> = [
  ['braces', '+7916{x}'],
  ['variable block', '+79161234567{origination_uuid=x}'],
  ['comma (simultaneous dial / variable separator)', '+7916,1'],
  ['two numbers with a comma', '+79161234567,+79161234568'],
  ['pipe (sequential dial)', '+7916|1'],
  ['ampersand (application)', '+7916&1'],
  ['application after a space', '+79161234567 &bridge(user/1000)'],
  ['single quote', "'"],
  ['quoted number', "'+79161234567'"],
  ['double quote', '"'],
  ['backslash', '\\'],
  ['open bracket', '['],
  ['close bracket', ']'],
  ['per-leg variables', '[leg_timeout=1]+79161234567'],
  ['space', ' '],
  ['trailing space', '+79161234567 '],
  ['spaced number', '+7 916 123 45 67'],
  ['dashes', '+7-916-123-45-67'],
  ['newline', '\n'],
  ['trailing newline', '+79161234567\n'],
  ['carriage return', '+79161234567\r'],
  ['NUL', '+79161234567\u0000'],
  ['variable expansion', '${var}'],
  ['api expansion', '${system(touch /tmp/x)}'],
  ['global variable', '$${domain}'],
  ['dial string', 'sofia/gateway/x/1'],
  ['semicolon', '+7916;1'],
  ['uri parameters', '+79161234567;ext=1'],
  ['at sign', '+79161234567@evil.example'],
  ['sip uri', 'sip:+79161234567@evil.example'],
  ['tel uri', 'tel:+79161234567'],
  ['enterprise originate', '+79161234567:_:+79161234568'],
  ['angle brackets', '<x=1>+79161234567'],
  ['arabic-indic digits', '+\u0667\u0669\u0661\u0666\u0661\u0662\u0663\u0664\u0665\u0666\u0667'],
  ['fullwidth digits', '+\uff17\uff19\uff11\uff16\uff11\uff12\uff13\uff14\uff15\uff16\uff17'],
  ['right-to-left override', '\u202e+79161234567'],
  ['empty', ''],
  ['plus only', '+'],
  ['16 digits', '+1234567890123456'],
  ['6 digits', '+123456'],
  ['leading 0 after +', '+0791612345'],
  ['national with leading 0', '07916123456'],
  ['no plus', '79161234567'],
  ['double plus', '++79161234567'],
  ['international 00 prefix', '0079161234567'],
  ['letters', '+7916ABCDEFG'],
  ['number type', 79161234567],
  ['null', null],
  ['object', { toString: () => '+79161234567' }],
];

describe('buildOriginateCommand', () => {
  it('builds the exact originate, with and without a caller id', () => {
    const callId = '0b7e4a7c-5d1e-4f7a-9c3e-2a1b0c9d8e7f';
    const base = { callId, to: '+79161234567', ringTimeoutS: 45, message: 'x', requireAck: true, correlationId: 'c' };
    expect(buildOriginateCommand({ ...base, callerId: '+4930901820' }, SETTINGS)).toBe(
      `originate {origination_uuid=${callId},tig_call_id=${callId},origination_caller_id_number=+4930901820,originate_timeout=45,ignore_early_media=true,park_timeout=165,tts_engine=flite,tts_voice=kal}sofia/gateway/tas/+79161234567 &park()`,
    );
    expect(buildOriginateCommand({ ...base, callerId: undefined }, { dialStringTemplate: 'loopback/{number}/default', ttsEngine: 'tts_commandline', ttsVoice: 'Anna-1' })).toBe(
      `originate {origination_uuid=${callId},tig_call_id=${callId},originate_timeout=45,ignore_early_media=true,park_timeout=165,tts_engine=tts_commandline,tts_voice=Anna-1}loopback/+79161234567/default &park()`,
    );
  });

  it.each(HOSTILE_NUMBERS)('refuses a hostile "to" (%s)', (_label, value) => {
    const request = { ...callRequest(), to: value as string };
    expect(() => buildOriginateCommand(request, SETTINGS)).toThrow(UnsafeDialInputError);
    expect(() => buildOriginateCommand(request, SETTINGS)).toThrow(expect.objectContaining({ field: 'to', code: 'UNSAFE_DIAL_INPUT' }));
  });

  it.each(HOSTILE_NUMBERS)('refuses a hostile callerId (%s)', (_label, value) => {
    const request = { ...callRequest(), callerId: value as string };
    expect(() => buildOriginateCommand(request, SETTINGS)).toThrow(expect.objectContaining({ name: 'UnsafeDialInputError', field: 'callerId' }));
  });

  it('never puts the hostile value into the error message', () => {
    try {
      buildOriginateCommand({ ...callRequest(), to: '+7916${system(id)}' }, SETTINGS);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(UnsafeDialInputError);
      expect((error as Error).message).not.toContain('system');
    }
  });

  it('refuses call ids that are not lowercase uuids', () => {
    const bad = ['', 'abc', randomUUID().toUpperCase(), `${randomUUID()} `, `${randomUUID()},x=1`, `${randomUUID()}}`, `{${randomUUID()}`, `${randomUUID()}\n`, '00000000-0000-0000-0000-00000000000g', '00000000000000000000000000000000', 42];
    for (const callId of bad) {
      expect(() => buildOriginateCommand({ ...callRequest(), callId: callId as string }, SETTINGS)).toThrow(expect.objectContaining({ field: 'callId' }));
    }
  });

  it('refuses ring timeouts that are not integers from 1 to 600', () => {
    for (const ringTimeoutS of [0, -1, 601, 1.5, Number.NaN, Number.POSITIVE_INFINITY, '30', 1e9]) {
      expect(() => buildOriginateCommand({ ...callRequest(), ringTimeoutS: ringTimeoutS as number }, SETTINGS)).toThrow(
        expect.objectContaining({ field: 'ringTimeoutS' }),
      );
    }
    expect(buildOriginateCommand({ ...callRequest(), ringTimeoutS: 600 }, SETTINGS)).toContain('originate_timeout=600,ignore_early_media=true,park_timeout=720,');
    expect(buildOriginateCommand({ ...callRequest(), ringTimeoutS: 1 }, SETTINGS)).toContain('originate_timeout=1,ignore_early_media=true,park_timeout=121,');
  });

  it('refuses templates outside the config pattern or without exactly one {number}', () => {
    const bad = [
      'sofia/gateway/tas/',
      'sofia/gateway/tas/{number}/{number}',
      '{number}|sofia/gateway/b/{number}',
      'sofia/gateway/tas/{number},user/1000',
      'sofia/gateway/tas/{number} &bridge(x)',
      '{x=1}sofia/gateway/tas/{number}',
      '[x=1]sofia/gateway/tas/{number}',
      'sofia/gateway/${gw}/{number}',
      "sofia/gateway/'tas'/{number}",
      'sofia/gateway/tas/{number}\n',
      'sofia/gateway/tas/{NUMBER}',
      'sofia/gateway/tas/{ number }',
      '',
    ];
    for (const dialStringTemplate of bad) {
      expect(() => buildOriginateCommand(callRequest(), { ...SETTINGS, dialStringTemplate })).toThrow(expect.objectContaining({ field: 'dialStringTemplate' }));
    }
    for (const ttsEngine of ['', 'flite voice', 'flite|x', 'a'.repeat(51), 'flite,x=1']) {
      expect(() => buildOriginateCommand(callRequest(), { ...SETTINGS, ttsEngine })).toThrow(expect.objectContaining({ field: 'ttsEngine' }));
    }
    for (const ttsVoice of ['', 'kal}', "kal'", 'kal\n']) {
      expect(() => buildOriginateCommand(callRequest(), { ...SETTINGS, ttsVoice })).toThrow(expect.objectContaining({ field: 'ttsVoice' }));
    }
  });

  it('builds exactly the expected command for 2,000 random valid E.164 numbers (deterministic PRNG)', () => {
    const random = prng(0x5eed_c0de);
    const int = (min: number, max: number) => min + Math.floor(random() * (max - min + 1));
    const digits = (n: number) => Array.from({ length: n }, () => String(int(0, 9))).join('');
    const hex = (n: number) => Array.from({ length: n }, () => '0123456789abcdef'[int(0, 15)]).join('');
    const e164 = () => `+${int(1, 9)}${digits(int(6, 14))}`;
    const templates = ['sofia/gateway/tas/{number}', 'loopback/{number}/default', 'sofia/external/{number}@sip.example.com:5060', 'user/{number}', 'sofia/gateway/gw_1/00{number}'];
    const shape =
      /^originate \{origination_uuid=([0-9a-f-]{36}),tig_call_id=\1,(?:origination_caller_id_number=\+[1-9][0-9]{6,14},)?originate_timeout=([0-9]+),ignore_early_media=true,park_timeout=([0-9]+),tts_engine=flite,tts_voice=kal\}[A-Za-z0-9/_.:@=-]*\+[1-9][0-9]{6,14}[A-Za-z0-9/_.:@=-]* &park\(\)$/;
    for (let i = 0; i < 2000; i++) {
      const to = e164();
      const callerId = random() < 0.5 ? e164() : undefined;
      const callId = `${hex(8)}-${hex(4)}-${hex(4)}-${hex(4)}-${hex(12)}`;
      const ringTimeoutS = int(1, 600);
      const template = templates[int(0, templates.length - 1)]!;
      const command = buildOriginateCommand(
        { callId, to, callerId, ringTimeoutS, message: 'm', requireAck: false, correlationId: 'c' },
        { ...SETTINGS, dialStringTemplate: template },
      );
      const cid = callerId === undefined ? '' : `origination_caller_id_number=${callerId},`;
      const expected = `originate {origination_uuid=${callId},tig_call_id=${callId},${cid}originate_timeout=${ringTimeoutS},ignore_early_media=true,park_timeout=${ringTimeoutS + 120},tts_engine=flite,tts_voice=kal}${template.replace('{number}', to)} &park()`;
      expect(command).toBe(expected);
      expect(command).toMatch(shape);
      expect(command.split(' ')).toHaveLength(3);
    }
  });

  it('assertSafeMessage refuses control characters, line breaks, variable expansion and absurd lengths', () => {
    for (const message of ['line\nbreak', 'cr\rhere', 'tab\there', 'nul\u0000', 'del\u007f', 'c1\u0085', 'ls\u2028', 'ps\u2029', 'x ${system(id)}', '$${domain}', '', '   ', 'a'.repeat(1001), 42]) {
      expect(() => assertSafeMessage(message)).toThrow(expect.objectContaining({ field: 'message' }));
    }
    for (const message of ['Smoke alarm at Main Street 1, flat 2. Call 112!', 'Пожар на кухне: срочно проверьте.', 'Costs $5 | pipes & quotes \' " are fine', 'a'.repeat(1000)]) {
      expect(() => assertSafeMessage(message)).not.toThrow();
    }
  });
});

// ---- the telephony adapter against the peer ------------------------------------------------

describe('FreeSwitchTelephony against the Event Socket peer', () => {
  it('answered and acknowledged: ringing, answered, acknowledged, ended{NORMAL_CLEARING}; speaks, asks for 1, hangs up', async () => {
    const { peer, scripts } = await peerFor();
    const t = await started(peer);
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'answer', ringMs: 5, answerAfterMs: 20, dtmf: '1', dtmfIntervalMs: 10, hangupAfterMs: 60 });
    await t.telephony.placeCall(request);
    const ended = await t.waitEnded(request.callId);
    expect(t.kinds(request.callId)).toEqual(['ringing', 'answered', 'acknowledged', 'ended']);
    expect(ended).toEqual({ callId: request.callId, kind: 'ended', at: expect.any(Date), cause: 'NORMAL_CLEARING', answered: true, acknowledged: true });
    for (const p of t.of(request.callId)) expectRecent(p.at);

    // One originate, with our id as channel uuid, variable and Job-UUID.
    const [originate] = originatesOf(peer, request.callId);
    expect(originatesOf(peer, request.callId)).toHaveLength(1);
    expect(originate).toMatchObject({ uuid: request.callId, jobUuid: request.callId, dialString: `sofia/gateway/tas/${request.to}`, application: '&park()' });
    expect(originate?.variables).toMatchObject({ origination_caller_id_number: '+4930901820', originate_timeout: '30', park_timeout: '150', tts_engine: 'flite', tts_voice: 'kal' });

    await waitFor(() => sendmsgs(peer, request.callId).length === 3, 'three sendmsg');
    expect(sendmsgs(peer, request.callId)).toEqual([
      { command: 'execute', app: 'speak', arg: `flite|kal|${request.message}`, eventLock: 'true' },
      { command: 'execute', app: 'play_and_get_digits', arg: "1 1 3 5000 # 'say:Press 1 to confirm' silence_stream://250 tig_ack_digit \\d", eventLock: 'true' },
      { command: 'execute', app: 'hangup', arg: 'NORMAL_CLEARING', eventLock: 'true' },
    ]);
  });

  it('answered without a digit: ended acknowledged=false; without requireAck no play_and_get_digits is sent', async () => {
    const { peer, scripts } = await peerFor();
    const t = await started(peer);
    const withAck = callRequest();
    const withoutAck = callRequest({ requireAck: false, callerId: undefined });
    scripts.set(withAck.callId, { outcome: 'answer', hangupAfterMs: 60 });
    scripts.set(withoutAck.callId, { outcome: 'answer', dtmf: '2', hangupAfterMs: 60 });
    await Promise.all([t.telephony.placeCall(withAck), t.telephony.placeCall(withoutAck)]);
    expect(await t.waitEnded(withAck.callId)).toMatchObject({ cause: 'NORMAL_CLEARING', answered: true, acknowledged: false });
    expect(await t.waitEnded(withoutAck.callId)).toMatchObject({ cause: 'NORMAL_CLEARING', answered: true, acknowledged: false });
    expect(t.kinds(withoutAck.callId)).toEqual(['ringing', 'answered', 'ended']);

    await waitFor(() => sendmsgs(peer, withAck.callId).length === 3 && sendmsgs(peer, withoutAck.callId).length === 2, 'the sendmsg');
    expect(sendmsgs(peer, withoutAck.callId).map((m) => m.app)).toEqual(['speak', 'hangup']);
    expect(sendmsgs(peer, withAck.callId).map((m) => m.app)).toEqual(['speak', 'play_and_get_digits', 'hangup']);
    expect(originatesOf(peer, withoutAck.callId)[0]?.variables.origination_caller_id_number).toBeUndefined();
  });

  it('plays the configured prompt files instead of speaking', async () => {
    const { peer, scripts } = await peerFor();
    const t = await started(peer, { promptFile: 'tig/smoke-alarm.wav', ackPromptFile: '/usr/share/freeswitch/sounds/tig/press-1.wav' });
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'answer', dtmf: '1', hangupAfterMs: 40 });
    await t.telephony.placeCall(request);
    await t.waitEnded(request.callId);
    await waitFor(() => sendmsgs(peer, request.callId).length === 3, 'three sendmsg');
    expect(sendmsgs(peer, request.callId).map((m) => [m.app, m.arg])).toEqual([
      ['playback', 'tig/smoke-alarm.wav'],
      ['play_and_get_digits', '1 1 3 5000 # /usr/share/freeswitch/sounds/tig/press-1.wav silence_stream://250 tig_ack_digit \\d'],
      ['hangup', 'NORMAL_CLEARING'],
    ]);
  });

  it.each([
    ['USER_BUSY', { outcome: 'fail', cause: 'USER_BUSY' }, ['ended'], undefined],
    ['NO_ANSWER', { outcome: 'fail', cause: 'NO_ANSWER', afterMs: 40 }, ['ringing', 'ended'], undefined],
    ['CALL_REJECTED', { outcome: 'fail', cause: 'CALL_REJECTED', sipCode: 603 }, ['ended'], 603],
    ['NORMAL_TEMPORARY_FAILURE', { outcome: 'fail', cause: 'NORMAL_TEMPORARY_FAILURE', sipCode: 503 }, ['ended'], 503],
    ['SUBSCRIBER_ABSENT', { outcome: 'fail', cause: 'SUBSCRIBER_ABSENT', sipCode: 480, ring: true }, ['ringing', 'ended'], 480],
  ] as Array<[string, CallScript, string[], number | undefined]>)('a failed call (%s) ends once with its cause and SIP code', async (cause, script, kinds, sipCode) => {
    const { peer, scripts } = await peerFor();
    const t = await started(peer);
    const request = callRequest();
    scripts.set(request.callId, script);
    await t.telephony.placeCall(request);
    const ended = await t.waitEnded(request.callId);
    expect(ended).toEqual({ callId: request.callId, kind: 'ended', at: expect.any(Date), cause, answered: false, acknowledged: false, ...(sipCode === undefined ? {} : { sipCode }) });
    expect(t.kinds(request.callId)).toEqual(kinds);
    // The BACKGROUND_JOB -ERR came after the hangup event: still one `ended`, no nudge sent.
    await t.flushEvents();
    expect(t.endedOf(request.callId)).toHaveLength(1);
    expect(sendmsgs(peer, request.callId)).toEqual([]);
  });

  it('BACKGROUND_JOB -ERR before or after CHANNEL_HANGUP_COMPLETE: exactly one ended, from the hangup event', async () => {
    const { peer, scripts } = await peerFor();
    const clock = new ManualClock();
    const t = await started(peer, { clock, jobFailureGraceMs: 2000 });
    const jobFirst = callRequest();
    const jobLast = callRequest();
    scripts.set(jobFirst.callId, { outcome: 'fail', cause: 'NORMAL_TEMPORARY_FAILURE', sipCode: 503, jobBeforeHangupComplete: true });
    scripts.set(jobLast.callId, { outcome: 'fail', cause: 'NORMAL_TEMPORARY_FAILURE', sipCode: 503, jobBeforeHangupComplete: false });
    await Promise.all([t.telephony.placeCall(jobFirst), t.telephony.placeCall(jobLast)]);
    const ended = [await t.waitEnded(jobFirst.callId), await t.waitEnded(jobLast.callId)];
    await t.flushEvents();
    // The hangup event (with SIP details) won in both orders; no grace timer is left waiting.
    for (const e of ended) expect(e).toMatchObject({ cause: 'NORMAL_TEMPORARY_FAILURE', sipCode: 503, answered: false });
    expect(clock.pendingTimers).toBe(0);
    clock.advance(10_000);
    expect(t.endedOf(jobFirst.callId)).toHaveLength(1);
    expect(t.endedOf(jobLast.callId)).toHaveLength(1);
  });

  it('BACKGROUND_JOB -ERR with no channel events: ended from the job after the grace, and never a second one', async () => {
    const { peer, scripts } = await peerFor();
    const clock = new ManualClock();
    const t = await started(peer, { clock, jobFailureGraceMs: 2000 });
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'hang' });
    await t.telephony.placeCall(request);
    await waitFor(() => t.kinds(request.callId).includes('ringing'), 'ringing');
    // What FreeSWITCH sends when the endpoint fails before a channel exists (e.g. error/...).
    peer.emitEvent('BACKGROUND_JOB', { 'Job-UUID': request.callId, 'Job-Command': 'originate' }, '-ERR DESTINATION_OUT_OF_ORDER\n');
    await waitFor(() => clock.pendingTimers === 1, 'the grace timer');
    clock.advance(1999);
    expect(t.endedOf(request.callId)).toHaveLength(0);
    clock.advance(1);
    expect(t.endedOf(request.callId)).toEqual([
      { callId: request.callId, kind: 'ended', at: expect.any(Date), cause: 'DESTINATION_OUT_OF_ORDER', answered: false, acknowledged: false },
    ]);
    expectRecent(t.endedOf(request.callId)[0]!.at);
    // The channel's own hangup arriving later does not produce a second `ended`.
    await t.telephony.hangup(request.callId);
    await t.flushEvents();
    expect(t.endedOf(request.callId)).toHaveLength(1);
  });

  it('a job result for a call it did not place, and +OK results, are ignored', async () => {
    const { peer } = await peerFor();
    const clock = new ManualClock();
    const t = await started(peer, { clock });
    const stranger = randomUUID();
    peer.emitEvent('BACKGROUND_JOB', { 'Job-UUID': stranger, 'Job-Command': 'originate' }, '-ERR USER_BUSY\n');
    await t.flushEvents();
    expect(clock.pendingTimers).toBe(0);
    expect(t.of(stranger)).toEqual([]);
  });

  it('ignores loopback -b legs, other channels and events without our variable (recorded FreeSWITCH frames)', async () => {
    const { peer, scripts } = await peerFor();
    const t = await started(peer);
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'hang' });
    await t.telephony.placeCall(request);
    await waitFor(() => t.kinds(request.callId).includes('ringing'), 'ringing');
    const bLeg = randomUUID();
    for (const name of ['CHANNEL_ANSWER', 'CHANNEL_HANGUP_COMPLETE']) {
      peer.emitEvent(name, { 'Unique-ID': bLeg, variable_tig_call_id: request.callId, variable_loopback_leg: 'B', 'Hangup-Cause': 'NORMAL_CLEARING' });
    }
    peer.emitEvent('DTMF', { 'Unique-ID': bLeg, 'DTMF-Digit': '1' });
    // Calls placed by others (no tig_call_id), straight from the loopback/sipp transcripts.
    expect(await peer.replayFixture(path.join(FIXTURES, 'loopback.jsonl'))).toBeGreaterThan(20);
    expect(await peer.replayFixture(path.join(FIXTURES, 'sipp.jsonl'))).toBeGreaterThan(3);
    await t.flushEvents();
    expect(t.kinds(request.callId)).toEqual(['ringing']);
    expect(t.progress.filter((p) => p.callId !== request.callId && p.kind !== 'ringing')).toEqual([]);
    expect(sendmsgs(peer, request.callId)).toEqual([]);
  });

  it('reports calls it was not asked to place (e.g. before a restart) but does not drive them', async () => {
    const { peer } = await peerFor();
    const t = await started(peer);
    const orphan = randomUUID();
    const base = { 'Unique-ID': orphan, variable_tig_call_id: orphan };
    peer.emitEvent('CHANNEL_ANSWER', base);
    peer.emitEvent('DTMF', { 'Unique-ID': orphan, 'DTMF-Digit': '1' });
    peer.emitEvent('CHANNEL_HANGUP_COMPLETE', { ...base, 'Hangup-Cause': 'NORMAL_CLEARING', variable_answer_epoch: '1795772419', variable_tig_ack_digit: '1', variable_sip_term_status: '200' });
    await t.waitEnded(orphan);
    expect(t.of(orphan).map((p) => p.kind)).toEqual(['answered', 'acknowledged', 'ended']);
    expect(t.endedOf(orphan)[0]).toMatchObject({ cause: 'NORMAL_CLEARING', answered: true, acknowledged: true, sipCode: 200 });
    expect(sendmsgs(peer, orphan)).toEqual([]);
    expect(t.lines.some((l) => l.level === 'debug' && /no request here/.test(l.msg ?? ''))).toBe(true);

    // Answer and acknowledgement known only from the hangup event's variables.
    const late = randomUUID();
    peer.emitEvent('CHANNEL_HANGUP_COMPLETE', { 'Unique-ID': late, variable_tig_call_id: late, 'Hangup-Cause': 'NORMAL_CLEARING', 'Caller-Channel-Answered-Time': '1795772419000000', variable_tig_ack_digit: '1' });
    expect(await t.waitEnded(late)).toMatchObject({ answered: true, acknowledged: true });
    // A DTMF from a channel nobody told us about is ignored.
    const unknown = randomUUID();
    peer.emitEvent('DTMF', { 'Unique-ID': unknown, 'DTMF-Digit': '1' });
    await t.flushEvents();
    expect(t.of(unknown)).toEqual([]);
  });

  it('drives a call it adopts (placed by an earlier life or another instance), at once if already answered', async () => {
    const { peer, scripts } = await peerFor();
    const placing = await started(peer);
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'answer', answerAfterMs: 20 });
    // The placing process dies the moment its call is accepted, before the answer.
    await placing.telephony.placeCall(request);
    await placing.telephony.stop();
    await waitFor(() => peer.liveChannels().length > 0 && peer.commands.length > 0, 'the channel');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const before = sendmsgs(peer, request.callId).length;
    // Another process takes over: it never heard the answer, so it asks the channel.
    const adopting = await started(peer);
    await adopting.telephony.adoptCall(request);
    expect(peer.commands.some((command) => command.startsWith(`api uuid_getvar ${request.callId} answer_epoch`))).toBe(true);
    await adopting.flushEvents();
    const sent = sendmsgs(peer, request.callId).slice(before);
    expect(sent.map((message) => message.app)).toEqual(['speak', 'play_and_get_digits', 'hangup']);
    // Adopting again sends nothing more.
    await adopting.telephony.adoptCall(request);
    await adopting.flushEvents();
    expect(sendmsgs(peer, request.callId).slice(before)).toHaveLength(3);
  });

  it('an adopted call whose callee pressed 1 while nobody listened is confirmed, not asked again', async () => {
    const { peer, scripts } = await peerFor();
    const placing = await started(peer);
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'answer', answerAfterMs: 20 });
    await placing.telephony.placeCall(request);
    await waitFor(() => sendmsgs(peer, request.callId).some((message) => message.app === 'play_and_get_digits'), 'the prompt');
    // The placing process dies; the callee presses 1 meanwhile (FreeSWITCH keeps the digit).
    await placing.telephony.stop();
    expect(peer.pressDigit(request.callId, '1')).toBe(true);
    const before = sendmsgs(peer, request.callId).length;
    const adopting = await started(peer);
    await adopting.telephony.adoptCall(request);
    expect(adopting.kinds(request.callId)).toEqual(['acknowledged']);
    expect(sendmsgs(peer, request.callId)).toHaveLength(before);
    // Its hang-up, heard by the adopting process, carries the digit too.
    await adopting.telephony.hangup(request.callId);
    expect(await adopting.waitEnded(request.callId)).toMatchObject({ answered: true, acknowledged: true });
  });

  it('refuses unsafe input before sending anything', async () => {
    const { peer } = await peerFor();
    const t = await started(peer);
    const before = peer.commands.length;
    await expect(t.telephony.placeCall(callRequest({ to: '+7916,1' }))).rejects.toBeInstanceOf(UnsafeDialInputError);
    await expect(t.telephony.placeCall(callRequest({ callerId: '+7916|1' }))).rejects.toBeInstanceOf(UnsafeDialInputError);
    await expect(t.telephony.placeCall(callRequest({ message: 'fire\ncall-command: hangup' }))).rejects.toMatchObject({ name: 'UnsafeDialInputError', field: 'message' });
    await expect(t.telephony.placeCall(callRequest({ message: 'x ${system(id)}' }))).rejects.toMatchObject({ field: 'message' });
    await expect(t.telephony.callExists('x; status')).rejects.toBeInstanceOf(UnsafeDialInputError);
    await expect(t.telephony.hangup(`${randomUUID()} NORMAL_CLEARING`)).rejects.toBeInstanceOf(UnsafeDialInputError);
    expect(peer.commands.length).toBe(before);
    expect(() => new FreeSwitchTelephony({ host: '127.0.0.1', port: 1, password: 'x', ...SETTINGS, dialStringTemplate: 'sofia/{number}|x', logger: testLogger().logger })).toThrow(UnsafeDialInputError);
    expect(() => new FreeSwitchTelephony({ host: '127.0.0.1', port: 1, password: 'x', ...SETTINGS, promptFile: 'a b.wav', logger: testLogger().logger })).toThrow(/promptFile/);
  });

  it('wrong password: start() resolves, status() says so, placeCall rejects CallNotPlacedError', async () => {
    const { peer } = await peerFor({ password: 'not-ClueCon' });
    const t = telephonyFor(peer);
    const began = Date.now();
    await t.telephony.start();
    expect(Date.now() - began).toBeLessThan(1500);
    expect(t.telephony.status().ok).toBe(false);
    expect(t.telephony.status().detail).toMatch(/^FreeSWITCH refused the Event Socket password; disconnected since \d{4}-\d\d-\d\dT/);
    await expect(t.telephony.placeCall(callRequest())).rejects.toBeInstanceOf(CallNotPlacedError);
    await expect(t.telephony.callExists(randomUUID())).rejects.toThrow(/not connected/);
    expect(peer.originates).toEqual([]);
    expect(JSON.stringify(t.lines)).not.toContain('ClueCon');
  });

  it('nothing listening: start() resolves after the first attempt; placeCall rejects CallNotPlacedError', async () => {
    const { peer } = await peerFor();
    const port = peer.port;
    await peer.close();
    const { logger } = testLogger();
    const telephony = new FreeSwitchTelephony({ host: '127.0.0.1', port, password: 'ClueCon', ...SETTINGS, logger, reconnect: { initialDelayMs: 50, maxDelayMs: 100 }, startWaitMs: 2000 });
    onTestFinished(() => telephony.stop());
    expect(telephony.status()).toMatchObject({ ok: false, detail: expect.stringMatching(/^FreeSWITCH Event Socket disconnected since /) });
    await telephony.start();
    expect(telephony.status().ok).toBe(false);
    await expect(telephony.placeCall(callRequest())).rejects.toBeInstanceOf(CallNotPlacedError);
  });

  it('a drop while originates are in flight: CallOutcomeUnknownError for each written, reconnect, onReconnect, callExists; nothing re-sent', async () => {
    const { peer, scripts } = await peerFor();
    const t = await started(peer);
    let reconnects = 0;
    t.telephony.onReconnect(() => {
      reconnects += 1;
    });
    const inFlight = callRequest();
    const behind = callRequest();
    scripts.set(inFlight.callId, { outcome: 'hang' });
    scripts.set(behind.callId, { outcome: 'hang' });
    peer.misbehaveOnNext(/originate/, 'drop');
    const [first, second] = await Promise.allSettled([t.telephony.placeCall(inFlight), t.telephony.placeCall(behind)]);
    expect(first).toMatchObject({ status: 'rejected', reason: expect.any(CallOutcomeUnknownError) });
    // The second was written behind the first without waiting for its reply (pipelined), so the
    // switch may have taken it too: unknown, unless the drop came before it left (not placed).
    const secondReason = (second as PromiseRejectedResult).reason as Error;
    expect(second.status).toBe('rejected');
    expect(secondReason instanceof CallOutcomeUnknownError || secondReason instanceof CallNotPlacedError).toBe(true);
    expect(t.telephony.status().ok).toBe(false);

    await waitFor(() => reconnects === 1, 'onReconnect');
    expect(t.telephony.status().ok).toBe(true);
    // The switch did take the first originate (it is ringing); the second exactly when it was dialed.
    expect(await t.telephony.callExists(inFlight.callId)).toBe(true);
    const secondDialed = originatesOf(peer, behind.callId).length;
    expect(secondDialed).toBeLessThanOrEqual(1);
    if (secondReason instanceof CallNotPlacedError) expect(secondDialed).toBe(0);
    expect(await t.telephony.callExists(behind.callId)).toBe(secondDialed === 1);
    expect(originatesOf(peer, inFlight.callId)).toHaveLength(1);
    expect(peer.commands.filter((c) => c.startsWith('bgapi originate'))).toHaveLength(1 + secondDialed);
    if (secondDialed === 1) await t.telephony.hangup(behind.callId);

    // Its progress still arrives on the new connection.
    await t.telephony.hangup(inFlight.callId);
    expect(await t.waitEnded(inFlight.callId)).toMatchObject({ cause: 'ORIGINATOR_CANCEL', answered: false });
    expect(await t.telephony.callExists(inFlight.callId)).toBe(false);
    expect(reconnects).toBe(1);
  });

  it('status() and onReconnect follow the connection: not on the first connect, once per reconnect', async () => {
    const { peer } = await peerFor();
    const t = telephonyFor(peer);
    let reconnects = 0;
    t.telephony.onReconnect(() => {
      reconnects += 1;
    });
    await t.telephony.start();
    expect(t.telephony.status()).toEqual({ ok: true, detail: 'FreeSWITCH Event Socket connected' });
    expect(reconnects).toBe(0);
    peer.pause();
    peer.dropConnections();
    await waitFor(() => !t.telephony.status().ok, 'disconnected');
    const { detail } = t.telephony.status();
    const since = /disconnected since (\S+)$/.exec(detail)?.[1];
    expect(since && new Date(since).toISOString()).toBe(since);
    expect(Math.abs(new Date(since!).getTime() - Date.now())).toBeLessThan(5000);
    peer.resume();
    await waitFor(() => reconnects === 1, 'onReconnect');
    peer.dropConnections();
    await waitFor(() => reconnects === 2, 'second onReconnect');
    await t.telephony.stop();
    expect(t.telephony.status()).toEqual({ ok: false, detail: 'FreeSWITCH Event Socket stopped' });
  });

  it('works when every reply and event arrives split across TCP packets (splitWrites)', async () => {
    const { peer, scripts } = await peerFor({ splitWrites: true });
    const t = await started(peer);
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'answer', dtmf: '31', hangupAfterMs: 80 });
    await t.telephony.placeCall(request);
    expect(await t.waitEnded(request.callId)).toMatchObject({ cause: 'NORMAL_CLEARING', answered: true, acknowledged: true });
    expect(t.kinds(request.callId)).toEqual(['ringing', 'answered', 'acknowledged', 'ended']);
    const busy = callRequest();
    scripts.set(busy.callId, { outcome: 'fail', cause: 'USER_BUSY', sipCode: 486 });
    await t.telephony.placeCall(busy);
    expect(await t.waitEnded(busy.callId)).toMatchObject({ cause: 'USER_BUSY', sipCode: 486 });
    expect(await t.telephony.callExists(randomUUID())).toBe(false);
  });

  it('hangup() ends a ringing call; hanging up a call that is gone is fine', async () => {
    const { peer, scripts } = await peerFor();
    const t = await started(peer);
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'hang' });
    await t.telephony.placeCall(request);
    await waitFor(() => t.kinds(request.callId).includes('ringing'), 'ringing');
    expect(await t.telephony.callExists(request.callId)).toBe(true);
    await t.telephony.hangup(request.callId);
    expect(await t.waitEnded(request.callId)).toMatchObject({ cause: 'ORIGINATOR_CANCEL', answered: false, acknowledged: false });
    expect(t.kinds(request.callId)).toEqual(['ringing', 'ended']);
    await expect(t.telephony.hangup(request.callId)).resolves.toBeUndefined();
    await expect(t.telephony.hangup(randomUUID())).resolves.toBeUndefined();
    expect(peer.commands).toContain(`api uuid_kill ${request.callId} ORIGINATOR_CANCEL`);
    expect(await t.telephony.callExists(request.callId)).toBe(false);
  });

  it('a listener that throws does not stop the others', async () => {
    const { peer, scripts } = await peerFor();
    const t = telephonyFor(peer);
    t.telephony.onProgress(() => {
      throw new Error('listener bug');
    });
    const late: CallProgress[] = [];
    t.telephony.onProgress((p) => late.push(p));
    await t.telephony.start();
    const request = callRequest();
    scripts.set(request.callId, { outcome: 'fail', cause: 'USER_BUSY' });
    await t.telephony.placeCall(request);
    await waitFor(() => late.some((p) => p.kind === 'ended'), 'ended');
    expect(t.lines.some((l) => l.level === 'error' && l.msg === 'onProgress listener threw')).toBe(true);
  });

  it('every originate any peer of this file received holds only template, number, uuid and the fixed variable block', (ctx) => {
    const originates = allPeerCommands.filter((block) => block.startsWith('bgapi originate'));
    if (originates.length === 0) ctx.skip();
    expect(originates.length).toBeGreaterThan(15);
    const line =
      /^bgapi originate \{origination_uuid=([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}),tig_call_id=\1,(?:origination_caller_id_number=\+[1-9][0-9]{6,14},)?originate_timeout=[0-9]{1,3},ignore_early_media=true,park_timeout=[0-9]{1,3},tts_engine=flite,tts_voice=kal\}sofia\/gateway\/tas\/\+[1-9][0-9]{6,14} &park\(\)$/;
    for (const block of originates) {
      const [command = '', ...headers] = block.split('\n');
      const match = line.exec(command);
      expect(match, command).not.toBeNull();
      expect(headers).toEqual([`Job-UUID: ${match?.[1]}`]);
      expect(match?.[1]).toMatch(UUID);
    }
  });
});

