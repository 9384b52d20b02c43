/**
 * Fault 2, two instances and no load balancer: smoke events and incoming calls are sent to the
 * two gateways in turn (a sender whose gateway is gone tries the other, same ids), and one of
 * them is killed with SIGKILL in the middle of the run.
 *
 * At the end: every event is carried through and logged once, no call id reached the switch
 * twice and no number was called again but as the re-dial of a call whose outcome the kill made
 * unknowable; every announcement reached its speaker, and a speaker saw one notification id more
 * than once only when the kill fell between the delivery and its record (the receivers drop such
 * repeats by `webhook-id`, as Standard Webhooks prescribes). The survivor takes the dead one's
 * work over once its heartbeat is stale (INSTANCE_STALE_AFTER_S=3 here).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EslPeer } from '../support/esl-peer.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { SpeakerReceivers } from '../support/speaker-receivers.js';
import { mapLimit, until } from '../support/waiting.js';
import {
  ChaosRun,
  api,
  calleesAnsweringPrompts,
  calleesPressing1,
  checkNoDoubleCalls,
  createKey,
  eventLedger,
  postgresOnly,
  profile,
  report,
  seedSensors,
  seedSpeakers,
  untilSettled,
  smoke,
  untilAcknowledged,
  type Reply,
} from './harness.js';

const EVENTS = profile.instancesEvents;
const CALLS = profile.instancesCalls;
const numberOf = (i: number) => `+7916${String(8_000_000 + i).padStart(7, '0')}`;
const speakerNumber = (i: number) => `+7916${String(8_100_000 + i).padStart(7, '0')}`;

describe.skipIf(postgresOnly)(`fault: two instances, events alternated, one killed mid-run (${EVENTS} smoke events, ${CALLS} incoming calls)`, () => {
  const run = new ChaosRun();
  let peer: EslPeer;
  let receivers: SpeakerReceivers;
  let a: GatewayProcess;
  let b: GatewayProcess;

  beforeAll(async () => {
    await run.open();
    // Callees answer after 0.5–4 s, press 1 when asked (again, if an adopting gateway asks
    // again), and hang up a second later.
    let n = 0;
    peer = await run.peer(() => ({ outcome: 'answer', ringMs: 20, answerAfterMs: 500 + (n++ % 8) * 500 }));
    calleesAnsweringPrompts(run, peer);
    await calleesPressing1(run, peer, 1_000);
    receivers = run.own(await SpeakerReceivers.start());
    const env = (id: string) => run.gatewayEnv({ ...run.freeswitchEnv(peer), INSTANCE_ID: id, OUTBOUND_ALLOW_HOSTS: '127.0.0.1' });
    [a, b] = await Promise.all([run.launch(env('a')), run.launch(env('b'))]);
    await seedSensors(run, Array.from({ length: EVENTS }, (_, i) => ({ deviceId: `pair-sensor-${i}`, to: [numberOf(i)] })));
    const added = Array.from({ length: CALLS }, (_, i) => receivers.add(`pair-speaker-${i}`, ''));
    const secret = await seedSpeakers(run, added.map((receiver, i) => ({ deviceId: receiver.name, msisdn: speakerNumber(i), endpoint: receiver.url })));
    for (const receiver of added) receiver.secret = secret;
  }, 180_000);
  afterAll(() => run.close());

  it('exactly-once calls and announcements hold', { timeout: 180_000 }, async () => {
    const webhookKey = await createKey(a, 'webhook');
    const telephonyKey = await createKey(a, 'telephony');
    let bDead = false;
    const counters = { failedAttempts: 0 };
    let redirected = 0;
    /** To the instance whose turn it is, or to a when b is gone (same ids). */
    const send = async <T>(i: number, request: (gateway: GatewayProcess) => Promise<Reply<T>>): Promise<Reply<T>> => {
      if (i % 2 === 1 && !bDead) {
        try {
          const reply = await request(b);
          if (reply.status !== 503) return reply;
        } catch {
          // b died before or while answering
        }
        redirected++;
      }
      return untilAcknowledged(() => request(a), counters);
    };

    const killAt = Math.floor(EVENTS / 2);
    let sent = 0;
    let killed: Promise<number | string> | undefined;
    const events = mapLimit(Array.from({ length: EVENTS }, (_, i) => i), 10, async (i) => {
      if (++sent === killAt) {
        killed = b.stop('SIGKILL').then((code) => {
          bDead = true;
          return code;
        });
      }
      return send(i, (gateway) => smoke(gateway.baseUrl, webhookKey, `pair-sensor-${i}`, `evt-pair-${i}`));
    });
    // Incoming calls meanwhile: ringing, answered 3 s later, ended 1 s after that.
    const calls = mapLimit(Array.from({ length: CALLS }, (_, i) => i), CALLS, async (i) => {
      await sleep((i % 10) * 200);
      for (const state of ['ringing', 'answered', 'ended']) {
        if (state !== 'ringing') await sleep(state === 'answered' ? 3_000 : 1_000);
        const reply = await send(i, (gateway) =>
          api(gateway.baseUrl, 'POST', '/api/v1/incoming-calls', { call_id: `pair-call-${i}`, caller: '+74951234567', callee: speakerNumber(i), state }, telephonyKey),
        );
        expect(reply.status).toBe(202);
      }
    });
    const replies = await events;
    await calls;
    expect(await killed).toBe('SIGKILL');

    // Smoke: every event acknowledged, stored and logged once, carried through, nobody called twice.
    const alarmIds = new Set<string>();
    for (const reply of replies) {
      expect(reply.status).toBe(202);
      expect(reply.body.alarm_ids).toHaveLength(1);
      alarmIds.add(reply.body.alarm_ids![0]!);
    }
    expect(alarmIds.size).toBe(EVENTS);
    const ledger = await eventLedger(run, replies.map((_, i) => `evt-pair-${i}`));
    expect(ledger.stored).toBe(EVENTS);
    expect([...ledger.logged.values()].every((count) => count === 1)).toBe(true);
    const callRows = await untilSettled(run, [...alarmIds], 90_000);
    const resolved = await run.db.selectFrom('alarms').select('id').where('id', 'in', [...alarmIds]).where('status', '=', 'resolved').execute();
    expect(resolved).toHaveLength(EVENTS);
    const { redials, originates } = checkNoDoubleCalls(peer, callRows);
    // Both instances claimed and dialed calls side by side (SKIP LOCKED), none of them twice.
    const dialing = await run.db.selectFrom('event_logs').select('details').where('type', '=', 'call.dialing').execute();
    expect(new Set(dialing.map((row) => (row.details as { instance?: string }).instance))).toEqual(new Set(['a', 'b']));

    // Announcements: every notification settles; each one recorded delivered reached its speaker;
    // a speaker hears the states in order and nothing the gateway did not mean to send. (A ringing
    // not yet attempted when the call is answered is superseded: it is never sent.)
    const callIds = Array.from({ length: CALLS }, (_, i) => `pair-call-${i}`);
    await until(
      'every announcement settled',
      async () => (await run.db.selectFrom('notifications').select('id').where('call_id', 'in', callIds).where('status', 'in', ['pending', 'delivering']).execute()).length === 0,
      60_000,
      250,
    );
    const rows = await run.db.selectFrom('notifications').select(['id', 'device_id', 'type', 'status', 'attempts']).where('call_id', 'in', callIds).execute();
    const byId = new Map(rows.map((row) => [row.id, row]));
    const repeated: string[] = [];
    let received = 0;
    for (let i = 0; i < CALLS; i++) {
      const delivered = receivers.get(`pair-speaker-${i}`).delivered;
      const ids = new Set(delivered.map((request) => request.webhookId));
      received += ids.size;
      // Everything recorded delivered arrived ...
      for (const row of rows.filter((candidate) => candidate.device_id === `pair-speaker-${i}` && candidate.status === 'delivered')) expect(ids.has(row.id)).toBe(true);
      // ... and nothing arrived that was never attempted.
      for (const id of ids) expect(byId.get(id)?.attempts ?? 0).toBeGreaterThanOrEqual(1);
      const order = [...new Map(delivered.map((request) => [request.webhookId, request.body.type as string])).values()];
      expect(order).toEqual(['incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended'].filter((type) => order.includes(type)));
      const seen = new Set<string>();
      for (const request of delivered) {
        if (seen.has(request.webhookId)) repeated.push(request.webhookId);
        seen.add(request.webhookId);
      }
    }
    // A repeat is only ever a delivery the dead instance had in flight, sent again after the take-over.
    for (const id of repeated) expect(byId.get(id)!.attempts).toBeGreaterThanOrEqual(2);
    const statuses = rows.reduce<Record<string, number>>((counts, row) => ({ ...counts, [row.status]: (counts[row.status] ?? 0) + 1 }), {});
    expect(statuses.delivered ?? 0).toBeGreaterThan(0);
    report('two-instances', {
      events_sent: EVENTS,
      acknowledged: replies.filter((reply) => reply.status === 202).length,
      sent_to_the_survivor_after_the_kill: redirected,
      lost: EVENTS - ledger.stored,
      logged_twice: [...ledger.logged.values()].filter((count) => count > 1).length,
      originates,
      redials_of_unknowable_outcomes: redials,
      incoming_calls: CALLS,
      announcements_received: received,
      announcements_by_status: JSON.stringify(statuses),
      announcements_received_twice_same_webhook_id: repeated.length,
    });
  });
});
