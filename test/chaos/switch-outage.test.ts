/**
 * Fault 3, FreeSWITCH unreachable: the gateway reaches the Event Socket through a loopback proxy
 * that is cut for 10 s while alarms ring (connection reset, reconnections refused). FreeSWITCH
 * itself keeps its calls, as it does when only the Event Socket link is lost.
 *
 * While it lasts: /readyz reports telephony down, smoke events are still acknowledged and their
 * calls wait, queued, dialing nobody; the gateway retries with backoff (not in a tight loop).
 * Afterwards: the calls that were ringing are reconciled (asked with uuid_exists, adopted, not
 * dialed again) and the queued ones placed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EslPeer } from '../support/esl-peer.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { mapLimit, until } from '../support/waiting.js';
import { ChaosRun, api, calleesPressing1, checkNoDoubleCalls, createKey, postgresOnly, profile, report, seedSensors, untilSettled, smoke } from './harness.js';

const RINGING = 10;
const DURING = 10;
const numberOf = (i: number) => `+7916${String(5_000_000 + i).padStart(7, '0')}`;
const sensorOf = (i: number) => `switch-sensor-${i}`;

describe.skipIf(postgresOnly)(`fault: the FreeSWITCH Event Socket unreachable for ${profile.outageMs / 1000} s`, () => {
  const run = new ChaosRun();
  let peer: EslPeer;
  let proxy: TcpProxy;
  let gateway: GatewayProcess;
  let webhookKey: string;

  beforeAll(async () => {
    await run.open();
    // The calls placed before the cut ring for 16 s, then are answered and confirmed: they
    // outlive the outage. Later calls are answered at once.
    let n = 0;
    peer = await run.peer(() => (n++ < RINGING ? { outcome: 'answer', ringMs: 20, answerAfterMs: 16_000, dtmf: '1', dtmfIntervalMs: 100 } : { outcome: 'answer', ringMs: 20, answerAfterMs: 200, dtmf: '1', dtmfIntervalMs: 100 }));
    await calleesPressing1(run, peer);
    proxy = run.own(await startTcpProxy({ host: '127.0.0.1', port: peer.port }));
    gateway = await run.launch(run.gatewayEnv({ ...run.freeswitchEnv(proxy), INSTANCE_ID: 'switch-outage' }));
    webhookKey = await createKey(gateway, 'webhook');
    await seedSensors(run, Array.from({ length: RINGING + DURING }, (_, i) => ({ deviceId: sensorOf(i), to: [numberOf(i)], action: { ring_timeout_s: 40 } })));
  }, 120_000);
  afterAll(() => run.close());

  it('readyz reports it, calls wait queued, reconnects with backoff, ringing calls adopted, queued ones placed', { timeout: 120_000 }, async () => {
    const ringing = await mapLimit(Array.from({ length: RINGING }, (_, i) => i), 10, (i) => smoke(gateway.baseUrl, webhookKey, sensorOf(i), `evt-switch-${i}`));
    for (const reply of ringing) expect(reply.status).toBe(202);
    await until('the calls ring on the switch', () => peer.liveChannels().length >= RINGING, 20_000, 20);
    const refusedBefore = proxy.refused;

    proxy.cut();
    const cutAt = Date.now();
    await until('/readyz reports the switch down', async () => (await api(gateway.baseUrl, 'GET', '/readyz')).status === 503, 5_000, 100);
    const readiness = await api<{ checks: Record<string, { ok: boolean }> }>(gateway.baseUrl, 'GET', '/readyz');
    expect(readiness.body.checks.telephony?.ok).toBe(false);
    expect(readiness.body.checks.database?.ok).toBe(true);

    // Smoke during the outage: acknowledged, its call queued, nobody dialed.
    const during = await mapLimit(Array.from({ length: DURING }, (_, k) => RINGING + k), 5, (i) => smoke(gateway.baseUrl, webhookKey, sensorOf(i), `evt-switch-${i}`));
    for (const reply of during) expect(reply.status).toBe(202);
    const originatesAtCut = peer.originates.length;
    await sleep(Math.max(0, profile.outageMs - (Date.now() - cutAt)));
    expect(peer.originates.length).toBe(originatesAtCut);
    const queued = await run.db.selectFrom('calls').select('id').where('alarm_id', 'in', during.map((reply) => reply.body.alarm_ids![0]!)).where('status', '=', 'queued').execute();
    expect(queued).toHaveLength(DURING);
    const attempts = proxy.refused - refusedBefore;
    proxy.restore();

    // Backoff: a handful of attempts in 10 s, not a tight loop (500 ms doubling with jitter, capped at 3 s).
    expect(attempts).toBeGreaterThanOrEqual(1);
    expect(attempts).toBeLessThanOrEqual(20);
    await until('/readyz is ready again', async () => (await api(gateway.baseUrl, 'GET', '/readyz')).status === 200, 20_000, 100);

    const alarmIds = [...ringing, ...during].map((reply) => reply.body.alarm_ids![0]!);
    const calls = await untilSettled(run, alarmIds, 60_000);
    const resolved = await run.db.selectFrom('alarms').select('id').where('id', 'in', alarmIds).where('status', '=', 'resolved').execute();
    expect(resolved).toHaveLength(RINGING + DURING);
    // The ringing calls were asked about after the reconnection and kept: one originate each.
    const ringingCalls = peer.originates.slice(0, RINGING).map((o) => o.variables.origination_uuid!);
    for (const id of ringingCalls) {
      expect(peer.commands).toContain(`api uuid_exists ${id}`);
      expect(calls.find((call) => call.id === id), JSON.stringify(calls.find((call) => call.id === id))).toMatchObject({ status: 'completed', acknowledged: true });
    }
    const { redials, originates } = checkNoDoubleCalls(peer, calls);
    expect(redials).toBe(0);
    expect(originates).toBe(RINGING + DURING);
    report('switch-outage', {
      outage_ms: profile.outageMs,
      calls_ringing_at_cut: RINGING,
      events_during_outage: DURING,
      acknowledged_during_outage: during.filter((reply) => reply.status === 202).length,
      reconnect_attempts_during_outage: attempts,
      originates,
      redials,
      lost: RINGING + DURING - resolved.length,
    });
  });
});
