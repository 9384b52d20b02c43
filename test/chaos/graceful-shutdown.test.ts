/**
 * Fault 6, graceful shutdown: SIGTERM while calls ring on the switch and announcements are on
 * their way to a slow speaker. The gateway stops accepting, finishes the deliveries in flight,
 * records them, hands its live calls over and exits 0 within a bounded time. The other instance
 * takes the calls over at once (not when the heartbeat would have gone stale: that is set to a
 * minute here) and the announcements still pending; then the stopped instance starts again and
 * carries on.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EslPeer } from '../support/esl-peer.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { SpeakerReceivers } from '../support/speaker-receivers.js';
import { mapLimit, until } from '../support/waiting.js';
import { ChaosRun, api, calleesPressing1, checkNoDoubleCalls, createKey, postgresOnly, report, seedSensors, seedSpeakers, untilSettled, smoke } from './harness.js';

const RINGING = 6;
const CALLS = 6;
const numberOf = (i: number) => `+7916${String(7_000_000 + i).padStart(7, '0')}`;
const speakerNumber = (i: number) => `+7916${String(7_100_000 + i).padStart(7, '0')}`;
const SHUTDOWN_BOUND_MS = 10_000;

describe.skipIf(postgresOnly)('fault: SIGTERM while calls ring and announcements are in flight', () => {
  const run = new ChaosRun();
  let peer: EslPeer;
  let receivers: SpeakerReceivers;
  /** The instance stopped; the other one, 'b', takes over. */
  let a: GatewayProcess;

  beforeAll(async () => {
    await run.open();
    // Callees answer 8 s after the originate, press 1 and hang up: the calls outlive a's stop.
    peer = await run.peer(() => ({ outcome: 'answer', ringMs: 20, answerAfterMs: 8_000, dtmf: '1', dtmfIntervalMs: 100 }));
    await calleesPressing1(run, peer);
    receivers = run.own(await SpeakerReceivers.start());
    const env = (id: string) =>
      run.gatewayEnv({ ...run.freeswitchEnv(peer), INSTANCE_ID: id, INSTANCE_STALE_AFTER_S: '60', OUTBOUND_ALLOW_HOSTS: '127.0.0.1', NOTIFICATION_TIMEOUT_MS: '5000' });
    [a] = await Promise.all([run.launch(env('a')), run.launch(env('b'))]);
    await seedSensors(run, Array.from({ length: RINGING }, (_, i) => ({ deviceId: `term-sensor-${i}`, to: [numberOf(i)] })));
    const added = Array.from({ length: CALLS }, (_, i) => receivers.add(`term-speaker-${i}`, '', { kind: 'slow', delayMs: 1_500 }));
    const secret = await seedSpeakers(run, added.map((receiver, i) => ({ deviceId: receiver.name, msisdn: speakerNumber(i), endpoint: receiver.url })));
    for (const receiver of added) receiver.secret = secret;
  }, 120_000);
  afterAll(() => run.close());

  it('stops accepting, finishes what is in flight, exits 0 in time; the other instance takes over at once', { timeout: 120_000 }, async () => {
    const webhookKey = await createKey(a, 'webhook');
    const telephonyKey = await createKey(a, 'telephony');
    // a places every call (b is not told about them), and has announcements on their way.
    const alarms = await mapLimit(Array.from({ length: RINGING }, (_, i) => i), 6, (i) => smoke(a.baseUrl, webhookKey, `term-sensor-${i}`, `evt-term-${i}`));
    for (const reply of alarms) expect(reply.status).toBe(202);
    await until('the calls ring', () => peer.liveChannels().length >= RINGING, 20_000, 20);
    for (let i = 0; i < CALLS; i++) {
      const reply = await api(a.baseUrl, 'POST', '/api/v1/incoming-calls', { call_id: `term-call-${i}`, caller: '+74951234567', callee: speakerNumber(i) }, telephonyKey);
      expect(reply.status).toBe(202);
    }
    await until('announcements reach the speakers', () => receivers.maxInFlight > 0, 10_000, 10);
    const dialedByA = (await run.db.selectFrom('calls').select(['id', 'claimed_by']).where('status', 'in', ['dialing', 'ringing']).execute()).filter((call) => call.claimed_by === 'a');
    expect(dialedByA).toHaveLength(RINGING);

    const stopping = Date.now();
    const exited = a.stop('SIGTERM');
    // While it stops: new connections are refused or answered 503, never accepted and dropped.
    await sleep(50);
    const late = await api(a.baseUrl, 'POST', '/api/v1/webhooks/events', { event_id: 'evt-term-late', device_id: 'term-sensor-0', event_type: 'smoke' }, webhookKey).then(
      (reply) => reply.status,
      () => 'refused' as const,
    );
    expect([503, 'refused']).toContain(late);
    expect(await exited).toBe(0);
    const shutdownMs = Date.now() - stopping;
    expect(shutdownMs).toBeLessThan(SHUTDOWN_BOUND_MS);

    // Every announcement a had in flight was answered and recorded, none left 'delivering'.
    const delivering = await run.db.selectFrom('notifications').select('id').where('status', '=', 'delivering').where('claimed_by', '=', 'a').execute();
    expect(delivering).toHaveLength(0);

    // b takes the live calls over at once: asked the switch, adopted, not re-dialed.
    await until(
      'b adopted the calls',
      async () => (await run.db.selectFrom('calls').select('id').where('claimed_by', '=', 'b').execute()).length === RINGING,
      10_000,
      100,
    );
    const takeoverMs = Date.now() - stopping;
    const alarmIds = alarms.map((reply) => reply.body.alarm_ids![0]!);
    const calls = await untilSettled(run, alarmIds, 40_000);
    const resolved = await run.db.selectFrom('alarms').select('id').where('id', 'in', alarmIds).where('status', '=', 'resolved').execute();
    expect(resolved).toHaveLength(RINGING);
    const { redials } = checkNoDoubleCalls(peer, calls);
    expect(redials).toBe(0);
    expect(peer.originates).toHaveLength(RINGING);

    // Each speaker heard the ringing exactly once (delivered by a before it went, or by b).
    for (let i = 0; i < CALLS; i++) {
      await until(`speaker ${i} announced`, () => receivers.get(`term-speaker-${i}`).delivered.length >= 1, 20_000, 50);
      expect(new Set(receivers.get(`term-speaker-${i}`).delivered.map((request) => request.webhookId)).size).toBe(1);
    }
    const duplicates = Array.from({ length: CALLS }, (_, i) => receivers.get(`term-speaker-${i}`).delivered.length - 1).reduce((sum, n) => sum + n, 0);
    expect(duplicates).toBe(0);

    // The stopped instance starts again and works.
    const again = await run.launch(run.gatewayEnv({ ...run.freeswitchEnv(peer), INSTANCE_ID: 'a', OUTBOUND_ALLOW_HOSTS: '127.0.0.1' }));
    expect((await api(again.baseUrl, 'GET', '/readyz')).status).toBe(200);
    report('graceful-shutdown', {
      calls_ringing_at_sigterm: RINGING,
      announcements_in_flight: CALLS,
      exit_code: 0,
      shutdown_ms: shutdownMs,
      calls_taken_over_after_ms: takeoverMs,
      redials,
      duplicate_announcements: duplicates,
    });
  });
});
