import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/clock.js';
import { normalizeMsisdn } from '../../src/phone-numbers/msisdn.js';
import {
  DEFAULT_MOCK_TIMINGS,
  MockTelephony,
  mockMagicNumbers,
  mockOutcomeFor,
  type MockTelephonyOptions,
} from '../../src/telephony/mock/mock-telephony.js';
import {
  CallNotPlacedError,
  CallOutcomeUnknownError,
  type CallProgress,
  type CallRequest,
} from '../../src/telephony/telephony.js';

const START = new Date('2026-01-01T00:00:00Z').getTime();

function request(overrides: Partial<CallRequest> = {}): CallRequest {
  return {
    callId: 'call-1',
    to: '+79161234567',
    callerId: undefined,
    ringTimeoutS: 30,
    message: 'Smoke detected in the kitchen',
    requireAck: true,
    correlationId: 'corr-1',
    ...overrides,
  };
}

/** A progress event as the tests compare it: `at` in ms since the clock's start. */
type Seen = CallProgress extends infer P ? (P extends CallProgress ? Omit<P, 'at'> & { atMs: number } : never) : never;

function setup(options: Omit<MockTelephonyOptions, 'clock'> = {}) {
  const clock = new ManualClock();
  const telephony = new MockTelephony({ ...options, clock });
  const events: Seen[] = [];
  telephony.onProgress((progress) => {
    const { at, ...rest } = progress;
    events.push({ ...rest, atMs: at.getTime() - START });
  });
  /** Advances to `ms` after the start. */
  const advanceTo = (ms: number) => clock.advance(START + ms - clock.now().getTime());
  return { clock, telephony, events, advanceTo };
}

/**
 * Walks the clock through `expected` one event at a time, asserting that nothing happens one
 * millisecond before each event and that exactly the expected event happens on time.
 */
function expectTimeline(
  { events, advanceTo }: ReturnType<typeof setup>,
  expected: Seen[],
): void {
  const start = events.length;
  expected.forEach((event, index) => {
    advanceTo(event.atMs - 1);
    expect(events.slice(start), `nothing early before ${event.kind} at ${event.atMs}`).toHaveLength(index);
    advanceTo(event.atMs);
    expect(events.slice(start, start + index + 1)).toEqual(expected.slice(0, index + 1));
  });
}

const t = DEFAULT_MOCK_TIMINGS;
const RINGING = t.setupMs;
const ANSWERED = t.setupMs + t.answerAfterMs;
const MESSAGE_DONE = ANSWERED + t.messageMs;

function magic(suffix: string): string {
  return `+1202${suffix}`;
}

describe('MockTelephony: the default path', () => {
  it('rings, answers, plays the message, the callee presses 1, then hangs up NORMAL_CLEARING', async () => {
    const s = setup();
    await s.telephony.placeCall(request());
    expect(s.events).toEqual([]);
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'answered', atMs: ANSWERED },
      { callId: 'call-1', kind: 'acknowledged', atMs: MESSAGE_DONE + t.ackAfterMs },
      {
        callId: 'call-1',
        kind: 'ended',
        atMs: MESSAGE_DONE + t.ackAfterMs + t.hangupAfterMs,
        cause: 'NORMAL_CLEARING',
        sipCode: undefined,
        answered: true,
        acknowledged: true,
      },
    ]);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(4);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('without requireAck: answers, plays the message, hangs up; acknowledged=false', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ requireAck: false }));
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'answered', atMs: ANSWERED },
      {
        callId: 'call-1',
        kind: 'ended',
        atMs: MESSAGE_DONE + t.hangupAfterMs,
        cause: 'NORMAL_CLEARING',
        sipCode: undefined,
        answered: true,
        acknowledged: false,
      },
    ]);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(3);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('uses custom timings', async () => {
    const s = setup({ timings: { setupMs: 10, answerAfterMs: 20, messageMs: 30, ackAfterMs: 40, hangupAfterMs: 50 } });
    await s.telephony.placeCall(request());
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: 10 },
      { callId: 'call-1', kind: 'answered', atMs: 30 },
      { callId: 'call-1', kind: 'acknowledged', atMs: 100 },
      { callId: 'call-1', kind: 'ended', atMs: 150, cause: 'NORMAL_CLEARING', sipCode: undefined, answered: true, acknowledged: true },
    ]);
  });

  it('applies the ring timeout to any number: not answered in time ends NO_ANSWER', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ ringTimeoutS: 2 }));
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'ended', atMs: 2000, cause: 'NO_ANSWER', sipCode: undefined, answered: false, acknowledged: false },
    ]);
    s.clock.advance(60_000);
    expect(s.events).toHaveLength(2);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('an answer due exactly at the ring timeout loses to it', async () => {
    const s = setup({ timings: { setupMs: 300, answerAfterMs: 1700 } });
    await s.telephony.placeCall(request({ ringTimeoutS: 2 }));
    s.advanceTo(10_000);
    expect(s.events.map((e) => e.kind)).toEqual(['ringing', 'ended']);
    expect(s.events[1]).toMatchObject({ atMs: 2000, cause: 'NO_ANSWER', answered: false });
  });

  it('a ring timeout shorter than the setup ends NO_ANSWER without ringing', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ ringTimeoutS: 0.1 }));
    s.advanceTo(10_000);
    expect(s.events).toEqual([
      { callId: 'call-1', kind: 'ended', atMs: 100, cause: 'NO_ANSWER', sipCode: undefined, answered: false, acknowledged: false },
    ]);
  });

  it('once answered, the ring timeout no longer applies', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ ringTimeoutS: 3 }));
    s.advanceTo(60_000);
    expect(s.events.map((e) => e.kind)).toEqual(['ringing', 'answered', 'acknowledged', 'ended']);
    expect(s.events[3]).toMatchObject({ cause: 'NORMAL_CLEARING', answered: true, acknowledged: true });
  });
});

describe('MockTelephony: magic numbers', () => {
  it('5550101 busy: rings briefly then USER_BUSY (486)', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550101') }));
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'ended', atMs: RINGING + t.failAfterMs, cause: 'USER_BUSY', sipCode: 486, answered: false, acknowledged: false },
    ]);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(2);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('5550102 no answer: rings for ringTimeoutS then NO_ANSWER', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550102'), ringTimeoutS: 25 }));
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'ended', atMs: 25_000, cause: 'NO_ANSWER', sipCode: undefined, answered: false, acknowledged: false },
    ]);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(2);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('5550103 rejected: rings then CALL_REJECTED (603)', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550103') }));
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'ended', atMs: ANSWERED, cause: 'CALL_REJECTED', sipCode: 603, answered: false, acknowledged: false },
    ]);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(2);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('5550104 failure: NORMAL_TEMPORARY_FAILURE (503) without ringing', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550104') }));
    expectTimeline(s, [
      {
        callId: 'call-1',
        kind: 'ended',
        atMs: t.failAfterMs,
        cause: 'NORMAL_TEMPORARY_FAILURE',
        sipCode: 503,
        answered: false,
        acknowledged: false,
      },
    ]);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(1);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('5550105 answered but not confirmed: message plays, no digit, NORMAL_CLEARING', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550105') }));
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'answered', atMs: ANSWERED },
      {
        callId: 'call-1',
        kind: 'ended',
        atMs: MESSAGE_DONE + t.ackAfterMs + t.hangupAfterMs,
        cause: 'NORMAL_CLEARING',
        sipCode: undefined,
        answered: true,
        acknowledged: false,
      },
    ]);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(3);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('5550105 without requireAck ends like the default path', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550105'), requireAck: false }));
    s.advanceTo(120_000);
    expect(s.events.map((e) => e.kind)).toEqual(['ringing', 'answered', 'ended']);
    expect(s.events[2]).toMatchObject({ atMs: MESSAGE_DONE + t.hangupAfterMs, answered: true, acknowledged: false });
  });

  it('5550106 rings with no early end, then NO_ANSWER at the ring timeout', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550106'), ringTimeoutS: 60 }));
    expectTimeline(s, [
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'ended', atMs: 60_000, cause: 'NO_ANSWER', sipCode: undefined, answered: false, acknowledged: false },
    ]);
    expect(await s.telephony.callExists('call-1')).toBe(false);
  });

  it('5550106 ends ORIGINATOR_CANCEL when hung up while ringing', async () => {
    const s = setup();
    await s.telephony.placeCall(request({ to: magic('5550106'), ringTimeoutS: 60 }));
    s.advanceTo(45_000);
    expect(await s.telephony.callExists('call-1')).toBe(true);
    await s.telephony.hangup('call-1');
    expect(s.events).toEqual([
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'ended', atMs: 45_000, cause: 'ORIGINATOR_CANCEL', sipCode: 487, answered: false, acknowledged: false },
    ]);
    expect(s.clock.pendingTimers).toBe(0);
  });

  it('decides by the last 7 digits of any country number', () => {
    expect(mockOutcomeFor('+79165550101')).toBe('busy');
    expect(mockOutcomeFor('+4915155550104')).toBe('failure');
    expect(mockOutcomeFor('+12025550107')).toBe('answered');
    expect(mockOutcomeFor('+79161234567')).toBe('answered');
  });

  it('documents a table whose examples pass validation and map to their outcome', () => {
    expect(mockMagicNumbers.map((entry) => entry.suffix)).toEqual(['5550101', '5550102', '5550103', '5550104', '5550105', '5550106']);
    for (const entry of mockMagicNumbers) {
      expect(entry.example.endsWith(entry.suffix)).toBe(true);
      expect(normalizeMsisdn(entry.example, 'RU')).toEqual({ ok: true, e164: entry.example });
      expect(mockOutcomeFor(entry.example)).toBe(entry.outcome);
    }
  });

  it('every table entry ends with the documented cause and sip code', async () => {
    for (const entry of mockMagicNumbers) {
      const s = setup();
      await s.telephony.placeCall(request({ to: entry.example }));
      s.advanceTo(120_000);
      const ended = s.events.filter((e) => e.kind === 'ended');
      expect(ended, entry.suffix).toHaveLength(1);
      expect(ended[0], entry.suffix).toMatchObject({ cause: entry.cause, sipCode: entry.sipCode });
    }
  });
});

describe('MockTelephony: hangup, callExists, liveCalls', () => {
  it('hangs up a ringing call: ORIGINATOR_CANCEL, not answered, timers cancelled', async () => {
    const s = setup();
    await s.telephony.placeCall(request());
    s.advanceTo(RINGING + 100);
    await s.telephony.hangup('call-1');
    expect(s.events).toEqual([
      { callId: 'call-1', kind: 'ringing', atMs: RINGING },
      { callId: 'call-1', kind: 'ended', atMs: RINGING + 100, cause: 'ORIGINATOR_CANCEL', sipCode: 487, answered: false, acknowledged: false },
    ]);
    expect(s.clock.pendingTimers).toBe(0);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(2);
  });

  it('hangs up an answered call: ORIGINATOR_CANCEL, answered=true', async () => {
    const s = setup();
    await s.telephony.placeCall(request());
    s.advanceTo(ANSWERED + 1000);
    await s.telephony.hangup('call-1');
    expect(s.events.map((e) => e.kind)).toEqual(['ringing', 'answered', 'ended']);
    expect(s.events[2]).toEqual({
      callId: 'call-1',
      kind: 'ended',
      atMs: ANSWERED + 1000,
      cause: 'ORIGINATOR_CANCEL',
      sipCode: undefined,
      answered: true,
      acknowledged: false,
    });
    expect(s.clock.pendingTimers).toBe(0);
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(3);
  });

  it('hanging up after the acknowledgement keeps acknowledged=true', async () => {
    const s = setup();
    await s.telephony.placeCall(request());
    s.advanceTo(MESSAGE_DONE + t.ackAfterMs);
    await s.telephony.hangup('call-1');
    expect(s.events.at(-1)).toMatchObject({ kind: 'ended', cause: 'ORIGINATOR_CANCEL', answered: true, acknowledged: true });
  });

  it('hangup of an unknown or already ended call is fine and emits nothing', async () => {
    const s = setup();
    await expect(s.telephony.hangup('nope')).resolves.toBeUndefined();
    await s.telephony.placeCall(request({ to: magic('5550104') }));
    s.advanceTo(1000);
    await s.telephony.hangup('call-1');
    await s.telephony.hangup('call-1');
    expect(s.events.filter((e) => e.kind === 'ended')).toHaveLength(1);
  });

  it('callExists is true only while the call is live', async () => {
    const s = setup();
    expect(await s.telephony.callExists('call-1')).toBe(false);
    await s.telephony.placeCall(request({ requireAck: false }));
    expect(await s.telephony.callExists('call-1')).toBe(true);
    expect(s.telephony.liveCalls()).toEqual(['call-1']);
    s.advanceTo(MESSAGE_DONE + t.hangupAfterMs - 1);
    expect(await s.telephony.callExists('call-1')).toBe(true);
    s.advanceTo(MESSAGE_DONE + t.hangupAfterMs);
    expect(await s.telephony.callExists('call-1')).toBe(false);
    expect(s.telephony.liveCalls()).toEqual([]);
  });

  it('a new instance (a restart) knows no call', async () => {
    const s = setup();
    await s.telephony.placeCall(request());
    const restarted = new MockTelephony({ clock: s.clock });
    expect(await restarted.callExists('call-1')).toBe(false);
  });
});

describe('MockTelephony: duplicates and failures', () => {
  it('placing a live call id again dials a second independent call', async () => {
    const s = setup();
    await s.telephony.placeCall(request());
    s.advanceTo(1000);
    await s.telephony.placeCall(request());
    expect(s.telephony.placed).toHaveLength(2);
    expect(s.telephony.placed.map((r) => r.callId)).toEqual(['call-1', 'call-1']);
    expect(s.telephony.liveCalls()).toEqual(['call-1', 'call-1']);
    s.advanceTo(120_000);
    expect(s.events.map((e) => `${e.kind}@${e.atMs}`)).toEqual([
      `ringing@${RINGING}`,
      `ringing@${1000 + RINGING}`,
      `answered@${ANSWERED}`,
      `answered@${1000 + ANSWERED}`,
      `acknowledged@${MESSAGE_DONE + t.ackAfterMs}`,
      `ended@${MESSAGE_DONE + t.ackAfterMs + t.hangupAfterMs}`,
      `acknowledged@${1000 + MESSAGE_DONE + t.ackAfterMs}`,
      `ended@${1000 + MESSAGE_DONE + t.ackAfterMs + t.hangupAfterMs}`,
    ]);
    expect(s.telephony.liveCalls()).toEqual([]);
  });

  it('hangup ends every live call with the id', async () => {
    const s = setup();
    await s.telephony.placeCall(request());
    await s.telephony.placeCall(request());
    await s.telephony.placeCall(request({ callId: 'call-2' }));
    s.advanceTo(500);
    await s.telephony.hangup('call-1');
    expect(s.events.filter((e) => e.kind === 'ended').map((e) => e.callId)).toEqual(['call-1', 'call-1']);
    expect(s.telephony.liveCalls()).toEqual(['call-2']);
  });

  it('failNextPlace(CallNotPlacedError): rejects, dials nobody, only once', async () => {
    const s = setup();
    const error = new CallNotPlacedError('gateway down');
    s.telephony.failNextPlace(error);
    await expect(s.telephony.placeCall(request())).rejects.toBe(error);
    expect(s.telephony.placed).toEqual([]);
    expect(s.telephony.attempts).toHaveLength(1);
    expect(await s.telephony.callExists('call-1')).toBe(false);
    s.advanceTo(120_000);
    expect(s.events).toEqual([]);
    expect(s.clock.pendingTimers).toBe(0);

    await s.telephony.placeCall(request());
    expect(s.telephony.placed).toHaveLength(1);
    expect(s.telephony.attempts).toHaveLength(2);
  });

  it('failNextPlace(CallOutcomeUnknownError): rejects but the call is really dialled', async () => {
    const s = setup();
    const error = new CallOutcomeUnknownError('reply lost');
    s.telephony.failNextPlace(error);
    await expect(s.telephony.placeCall(request())).rejects.toBe(error);
    expect(s.telephony.placed).toHaveLength(1);
    expect(await s.telephony.callExists('call-1')).toBe(true);
    s.advanceTo(120_000);
    expect(s.events.map((e) => e.kind)).toEqual(['ringing', 'answered', 'acknowledged', 'ended']);
    expect(await s.telephony.callExists('call-1')).toBe(false);
  });

  it('failNextPlace queues: two failures fail the next two calls', async () => {
    const s = setup();
    s.telephony.failNextPlace(new CallNotPlacedError('one'));
    s.telephony.failNextPlace(new CallNotPlacedError('two'));
    await expect(s.telephony.placeCall(request())).rejects.toThrow('one');
    await expect(s.telephony.placeCall(request())).rejects.toThrow('two');
    await expect(s.telephony.placeCall(request())).resolves.toBeUndefined();
  });

  it('refuses a number that is not E.164 with CallNotPlacedError', async () => {
    const s = setup();
    await expect(s.telephony.placeCall(request({ to: '89161234567' }))).rejects.toBeInstanceOf(CallNotPlacedError);
    await expect(s.telephony.placeCall(request({ callerId: 'anonymous' }))).rejects.toBeInstanceOf(CallNotPlacedError);
    expect(s.telephony.placed).toEqual([]);
  });

  it('rejects invalid timings', () => {
    expect(() => new MockTelephony({ timings: { setupMs: -1 } })).toThrow(RangeError);
    expect(() => new MockTelephony({ timings: { messageMs: Number.NaN } })).toThrow(RangeError);
  });
});

describe('MockTelephony: lifecycle, status, listeners', () => {
  it('stop() cancels every timer, forgets live calls and emits nothing more', async () => {
    const s = setup();
    await s.telephony.start();
    await s.telephony.placeCall(request());
    await s.telephony.placeCall(request({ callId: 'call-2', to: magic('5550106') }));
    s.advanceTo(RINGING);
    expect(s.clock.pendingTimers).toBeGreaterThan(0);
    await s.telephony.stop();
    expect(s.clock.pendingTimers).toBe(0);
    expect(s.telephony.liveCalls()).toEqual([]);
    expect(await s.telephony.callExists('call-1')).toBe(false);
    const seen = s.events.length;
    s.clock.advance(120_000);
    expect(s.events).toHaveLength(seen);
  });

  it('after stop() placeCall is refused until start()', async () => {
    const s = setup();
    await s.telephony.stop();
    await expect(s.telephony.placeCall(request())).rejects.toBeInstanceOf(CallNotPlacedError);
    expect(s.clock.pendingTimers).toBe(0);
    await s.telephony.start();
    await expect(s.telephony.placeCall(request())).resolves.toBeUndefined();
  });

  it('reports a healthy status and its name', () => {
    const { telephony } = setup();
    expect(telephony.name).toBe('mock');
    expect(telephony.status()).toEqual({ ok: true, detail: 'mock telephony (no FreeSWITCH configured)' });
  });

  it('never calls reconnect listeners by itself; simulateReconnect does', async () => {
    const s = setup();
    let calls = 0;
    s.telephony.onReconnect(() => calls++);
    await s.telephony.placeCall(request());
    s.advanceTo(120_000);
    await s.telephony.stop();
    await s.telephony.start();
    expect(calls).toBe(0);
    s.telephony.simulateReconnect();
    expect(calls).toBe(1);
  });

  it('a throwing progress listener does not stop the call nor other listeners', async () => {
    const warnings: string[] = [];
    const clock = new ManualClock();
    const telephony = new MockTelephony({
      clock,
      logger: { debug: () => {}, info: () => {}, warn: (_obj, msg) => warnings.push(msg ?? '') },
    });
    const kinds: string[] = [];
    telephony.onProgress(() => {
      throw new Error('boom');
    });
    telephony.onProgress((progress) => kinds.push(progress.kind));
    await telephony.placeCall(request());
    clock.advance(120_000);
    expect(kinds).toEqual(['ringing', 'answered', 'acknowledged', 'ended']);
    expect(warnings).toHaveLength(4);
  });

  it('keeps only its latest calls in the history, so a gateway on the mock does not grow for ever', async () => {
    const s = setup({ historyLimit: 3 });
    for (let n = 1; n <= 5; n++) await s.telephony.placeCall(request({ callId: `call-${n}` }));
    expect(s.telephony.placed.map((call) => call.callId)).toEqual(['call-3', 'call-4', 'call-5']);
    expect(s.telephony.attempts.map((call) => call.callId)).toEqual(['call-3', 'call-4', 'call-5']);
    // The calls themselves are not forgotten: all five are live and end as usual.
    expect(s.telephony.liveCalls()).toHaveLength(5);
    s.advanceTo(120_000);
    expect(s.events.filter((event) => event.kind === 'ended')).toHaveLength(5);
  });

  it('stamps progress with the injected clock', async () => {
    const clock = new ManualClock('2030-05-05T10:00:00Z');
    const telephony = new MockTelephony({ clock });
    const ats: string[] = [];
    telephony.onProgress((progress) => ats.push(progress.at.toISOString()));
    await telephony.placeCall(request({ to: magic('5550104') }));
    clock.advance(1000);
    expect(ats).toEqual(['2030-05-05T10:00:00.200Z']);
  });
});
