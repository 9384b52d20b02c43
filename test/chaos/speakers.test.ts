/**
 * Fault 5, speaker endpoints misbehaving: one vendor's speakers answer only after 10 s, or are
 * dead (nothing listens), or flap (a request fails, the next succeeds), while another vendor's
 * healthy speakers share the same calls. Incoming calls keep arriving and a smoke alarm is raised
 * meanwhile.
 *
 * The healthy speakers get every announcement, in order, without waiting for the bad ones; the
 * alarm is called and resolved as usual; the gateway never has more deliveries in flight than
 * NOTIFICATION_CONCURRENCY, nor more than NOTIFICATION_CONCURRENCY_PER_HOST to the bad vendor's
 * host (the rest waits in the table, not in memory).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../support/gateway-process.js';
import { SpeakerReceivers } from '../support/speaker-receivers.js';
import { mapLimit, until } from '../support/waiting.js';
import { ChaosRun, api, createKey, postgresOnly, profile, report, seedSensors, seedSpeakers, smoke } from './harness.js';

const CALLS = profile.speakerCalls;
const CONCURRENCY = 16;
const PER_HOST = 8;
const numberOf = (i: number) => `+7916${String(6_000_000 + i).padStart(7, '0')}`;

describe.skipIf(postgresOnly)(`fault: slow (10 s), dead and flapping speakers beside healthy ones, ${CALLS} incoming calls`, () => {
  const run = new ChaosRun();
  /** Vendors' clouds, one host each: healthy, slow, flapping (dead: a port nobody listens on). */
  let healthy: SpeakerReceivers;
  let troubled: SpeakerReceivers;
  let flapping: SpeakerReceivers;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    await run.open();
    healthy = run.own(await SpeakerReceivers.start());
    troubled = run.own(await SpeakerReceivers.start());
    flapping = run.own(await SpeakerReceivers.start());
    gateway = await run.launch(
      run.gatewayEnv({ INSTANCE_ID: 'speakers', OUTBOUND_ALLOW_HOSTS: '127.0.0.1', NOTIFICATION_CONCURRENCY: String(CONCURRENCY), NOTIFICATION_CONCURRENCY_PER_HOST: String(PER_HOST), NOTIFICATION_TIMEOUT_MS: '15000' }),
    );
  }, 60_000);
  afterAll(() => run.close());

  it('healthy speakers and the alarm path are unaffected; deliveries in flight stay bounded', { timeout: 120_000 }, async () => {
    // Every number has a healthy speaker and a bad one; the bad ones rotate: slow, dead, flapping.
    const kinds = ['slow', 'dead', 'flapping'] as const;
    const speakers = Array.from({ length: CALLS }, (_, i) => {
      const good = healthy.add(`good-${i}`, '');
      const kind = kinds[i % kinds.length]!;
      // The dead one: a port where nothing listens.
      const bad =
        kind === 'dead'
          ? { name: `bad-${i}`, url: 'http://127.0.0.1:9/speaker', secret: '' }
          : kind === 'slow'
            ? troubled.add(`bad-${i}`, '', { kind: 'slow', delayMs: 10_000 })
            : flapping.add(`bad-${i}`, '', { kind: 'fail', times: 1, status: 503 });
      return [
        { receiver: good, msisdn: numberOf(i) },
        { receiver: bad, msisdn: numberOf(i) },
      ];
    }).flat();
    const secret = await seedSpeakers(run, speakers.map(({ receiver, msisdn }) => ({ deviceId: receiver.name, msisdn, endpoint: receiver.url })));
    for (const { receiver } of speakers) receiver.secret = secret;
    const telephonyKey = await createKey(gateway, 'telephony');
    const webhookKey = await createKey(gateway, 'webhook');
    await seedSensors(run, [{ deviceId: 'speakers-sensor', to: ['+79161234567'] }]);

    // The calls, all at once: ringing, answered 4 s later (an answer supersedes a ringing
    // announcement not yet attempted), ended 1 s after that.
    const started = Date.now();
    await mapLimit(Array.from({ length: CALLS }, (_, i) => i), CALLS, async (i) => {
      for (const state of ['ringing', 'answered', 'ended']) {
        if (state !== 'ringing') await sleep(state === 'answered' ? 4_000 : 1_000);
        const reply = await api(gateway.baseUrl, 'POST', '/api/v1/incoming-calls', { call_id: `chaos-call-${i}`, caller: '+74951234567', callee: numberOf(i), state }, telephonyKey);
        expect(reply.status).toBe(202);
      }
    });
    const alarm = await smoke(gateway.baseUrl, webhookKey, 'speakers-sensor', 'evt-speakers-1');
    expect(alarm.status).toBe(202);

    // The healthy speakers get all three, in order, long before the slow one could answer once.
    await until(
      'every healthy speaker has ringing, answered and ended',
      () => Array.from({ length: CALLS }, (_, i) => healthy.get(`good-${i}`).delivered.length).every((count) => count === 3),
      20_000,
      50,
    ).catch((error: unknown) => {
      const counts = Array.from({ length: CALLS }, (_, i) => `${i}:${healthy.get(`good-${i}`).delivered.length}/${healthy.get(`good-${i}`).requests.length}/${healthy.get(`good-${i}`).badSignatures}`);
      throw new Error(`${(error as Error).message}; delivered/requests/bad signatures per healthy speaker: ${counts.join(' ')}`);
    });
    const healthyDoneMs = Date.now() - started;
    for (let i = 0; i < CALLS; i++) {
      expect(healthy.get(`good-${i}`).delivered.map((request) => request.body.type)).toEqual(['incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended']);
    }
    // ... before the slow vendor had answered even its first request.
    const slowArrivals = Array.from({ length: CALLS }, (_, i) => i).filter((i) => i % 3 === 0).flatMap((i) => troubled.get(`bad-${i}`).requests.map((request) => request.arrivedAt));
    expect(slowArrivals.length).toBeGreaterThan(0);
    expect(Date.now()).toBeLessThan(Math.min(...slowArrivals) + 10_000);

    // The alarm path went on: called (mock telephony: answers, 1 pressed) and resolved.
    const alarmId = alarm.body.alarm_ids![0]!;
    await until('the alarm is resolved', async () => (await api<{ status: string }>(gateway.baseUrl, 'GET', `/api/v1/alarms/${alarmId}`)).body.status === 'resolved', 20_000, 200);

    // Flapping speakers get everything after a retry; the dead ones' notifications end failed or expired.
    await until(
      'every flapping speaker has all three',
      () => Array.from({ length: CALLS }, (_, i) => i).filter((i) => i % 3 === 2).every((i) => flapping.get(`bad-${i}`).delivered.length === 3),
      30_000,
      100,
    );
    // Never more deliveries in flight than the cap.
    expect(healthy.maxInFlight + troubled.maxInFlight + flapping.maxInFlight).toBeLessThanOrEqual(CONCURRENCY);
    expect(troubled.maxInFlight).toBeLessThanOrEqual(PER_HOST);
    report('speakers', {
      incoming_calls: CALLS,
      healthy_speakers_all_delivered_ms: healthyDoneMs,
      max_in_flight_to_healthy_host: healthy.maxInFlight,
      max_in_flight_to_troubled_host: troubled.maxInFlight,
      concurrency_cap: CONCURRENCY,
      per_host_cap: PER_HOST,
      slow_speaker_answers_after_ms: 10_000,
    });
  });
});
