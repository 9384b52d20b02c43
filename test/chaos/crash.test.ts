/**
 * Fault 1, crash: smoke events arrive while the gateway is killed with SIGKILL at random moments
 * and restarted (same INSTANCE_ID, as a supervisor does). Senders behave like a vendor's cloud:
 * an event not acknowledged (refused, reset, 503) is sent again with the same event id.
 *
 * At the end: every acknowledged event is stored and logged exactly once and its alarm carried
 * through to a confirmed call; no call id reached the switch twice; a call whose outcome is known
 * was never made again; and any re-dial is of a call whose outcome the crash made unknowable
 * (the callee hung up while no gateway watched), made only after the switch said the channel
 * no longer exists.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EslPeer } from '../support/esl-peer.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { mapLimit } from '../support/waiting.js';
import {
  ChaosRun,
  calleesAnsweringPrompts,
  calleesPressing1,
  checkNoDoubleCalls,
  createKey,
  eventLedger,
  postgresOnly,
  profile,
  report,
  seededRandom,
  seedSensors,
  smoke,
  untilAcknowledged,
  untilSettled,
  type EventReply,
  type Reply,
} from './harness.js';

const EVENTS = profile.crashEvents;
const KILLS = profile.crashKills;
const numberOf = (i: number) => `+7916${String(3_000_000 + i).padStart(7, '0')}`;
const sensorOf = (i: number) => `crash-sensor-${i}`;

describe.skipIf(postgresOnly)(`fault: the gateway killed (SIGKILL) ${KILLS} times while ${EVENTS} smoke events arrive`, () => {
  const run = new ChaosRun();
  let peer: EslPeer;

  beforeAll(async () => {
    await run.open();
    // Callees answer after 0.5–4 s, press 1 when asked (again if an adopting gateway asks again)
    // and hang up 8 s after pressing: calls live at a kill are adopted after the restart; those
    // that end while no gateway runs have an outcome nobody can know.
    const random = seededRandom();
    peer = await run.peer(() => ({ outcome: 'answer', ringMs: 20, answerAfterMs: 500 + Math.floor(random.next() * 3_500) }));
    calleesAnsweringPrompts(run, peer);
    await calleesPressing1(run, peer, 8_000);
  });
  afterAll(() => run.close());

  it('every acknowledged event carried through, logged once, nobody called twice', { timeout: 240_000 }, async () => {
    const env = run.gatewayEnv({ ...run.freeswitchEnv(peer), INSTANCE_ID: 'crash' });
    let gateway: GatewayProcess = await run.launch(env);
    const webhookKey = await createKey(gateway, 'webhook');
    const indexes = Array.from({ length: EVENTS }, (_, i) => i);
    await seedSensors(run, indexes.map((i) => ({ deviceId: sensorOf(i), to: [numberOf(i)] })));

    const random = seededRandom();
    // The kills fall at random moments of the stream, in separate tenths of it.
    const killAt = Array.from({ length: KILLS }, (_, k) => Math.floor(((k + 0.2 + random.next() * 0.6) / KILLS) * EVENTS * 0.9));
    const counters = { failedAttempts: 0 };
    let sent = 0;
    let restarting: Promise<void> | undefined;
    const killAndRestart = async () => {
      expect(await gateway.stop('SIGKILL')).toBe('SIGKILL');
      run.gateways.delete(gateway);
      gateway = await run.launch(env);
    };
    const replies = await mapLimit(indexes, 10, async (i): Promise<Reply<EventReply>> => {
      sent++;
      if (killAt.includes(sent) && !restarting) {
        restarting = killAndRestart().finally(() => (restarting = undefined));
      }
      return untilAcknowledged(() => smoke(gateway.baseUrl, webhookKey, sensorOf(i), `evt-crash-${i}`), counters);
    });
    await restarting;

    // Every event was acknowledged at last (202), and points at exactly one alarm.
    const alarmIds = new Set<string>();
    let duplicates = 0;
    for (const reply of replies) {
      expect(reply.status).toBe(202);
      expect(['accepted', 'duplicate']).toContain(reply.body.status);
      if (reply.body.status === 'duplicate') duplicates++;
      expect(reply.body.alarm_ids).toHaveLength(1);
      alarmIds.add(reply.body.alarm_ids![0]!);
    }
    expect(alarmIds.size).toBe(EVENTS);

    // Stored once, logged once.
    const ledger = await eventLedger(run, indexes.map((i) => `evt-crash-${i}`));
    expect(ledger.stored).toBe(EVENTS);
    expect(ledger.logged.size).toBe(EVENTS);
    expect([...ledger.logged.values()].every((count) => count === 1)).toBe(true);

    // Every alarm carried through to a confirmed call. Waits until every alarm has ended, then
    // checks each: an alarm that ended otherwise fails here with its calls, not as a timeout.
    const calls = await untilSettled(run, [...alarmIds], 150_000);
    const alarms = await run.db.selectFrom('alarms').select(['id', 'status']).where('id', 'in', [...alarmIds]).execute();
    const unresolved = alarms.filter((alarm) => alarm.status !== 'resolved');
    expect(
      unresolved.map((alarm) => ({ ...alarm, calls: calls.filter((call) => call.alarm_id === alarm.id) })),
      `alarms not resolved (seed ${random.seed})`,
    ).toEqual([]);
    for (const alarmId of alarmIds) {
      const own = calls.filter((call) => call.alarm_id === alarmId);
      expect(own[own.length - 1], JSON.stringify(own)).toMatchObject({ status: 'completed', acknowledged: true });
    }

    // Nobody called twice but where the crash made the first call's outcome unknowable.
    const { redials, originates } = checkNoDoubleCalls(peer, calls);
    const adopted = (await run.db.selectFrom('event_logs').select('id').where('type', '=', 'call.adopted').execute()).length;
    report('crash', {
      seed: random.seed,
      events_sent: EVENTS,
      acknowledged: replies.filter((reply) => reply.status === 202).length,
      attempts_refused_or_reset: counters.failedAttempts,
      acknowledged_as_duplicate: duplicates,
      lost: EVENTS - ledger.stored,
      logged_twice: [...ledger.logged.values()].filter((count) => count > 1).length,
      kills: KILLS,
      originates,
      redials_of_unknowable_outcomes: redials,
      calls_adopted_after_restart: adopted,
    });
  });
});
