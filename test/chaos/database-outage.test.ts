/**
 * Fault 4, database outage: the gateway reaches PostgreSQL through a loopback proxy that is cut
 * for 10 s (every connection reset, new ones refused: what a stopped server looks like).
 *
 * While it lasts: requests get 503 with Retry-After (never 500, never a hang), /readyz says not
 * ready and /healthz stays up. Calls already on the switch go on; what the switch reports in the
 * meantime is recorded once the database is back. Afterwards the gateway recovers by itself, and
 * nothing acknowledged before the outage is lost or done twice.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EslPeer } from '../support/esl-peer.js';
import type { GatewayProcess } from '../support/gateway-process.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { mapLimit, until } from '../support/waiting.js';
import {
  ChaosRun,
  api,
  calleesPressing1,
  checkNoDoubleCalls,
  createKey,
  eventLedger,
  postgresOnly,
  profile,
  report,
  seedSensors,
  untilSettled,
  smoke,
  untilAcknowledged,
  type EventReply,
  type Reply,
} from './harness.js';

const BEFORE = 30;
const DURING = 10;
const numberOf = (i: number) => `+7916${String(4_000_000 + i).padStart(7, '0')}`;
const sensorOf = (i: number) => `outage-sensor-${i}`;

describe.skipIf(postgresOnly)(`fault: PostgreSQL unreachable for ${profile.outageMs / 1000} s`, () => {
  const run = new ChaosRun();
  let peer: EslPeer;
  let proxy: TcpProxy;
  let gateway: GatewayProcess;
  let webhookKey: string;

  beforeAll(async () => {
    await run.open();
    // Callees answer 1.5–3 s after the originate and press 1: calls placed just before the cut
    // are answered, confirmed and hung up while the database is away.
    let n = 0;
    peer = await run.peer(() => ({ outcome: 'answer', ringMs: 20, answerAfterMs: 1_500 + (n++ % 10) * 150, dtmf: '1', dtmfIntervalMs: 100 }));
    await calleesPressing1(run, peer);
    const target = new URL(run.databaseUrl());
    proxy = run.own(await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) }));
    gateway = await run.launch(run.gatewayEnv({ ...run.freeswitchEnv(peer), DATABASE_URL: run.databaseUrl(proxy.port), INSTANCE_ID: 'outage' }));
    webhookKey = await createKey(gateway, 'webhook');
    await seedSensors(run, Array.from({ length: BEFORE + DURING }, (_, i) => ({ deviceId: sensorOf(i), to: [numberOf(i)] })));
  }, 120_000);
  afterAll(() => run.close());

  it('503 + Retry-After while it lasts, recovers by itself, loses nothing acknowledged, calls nobody twice', { timeout: 120_000 }, async () => {
    // Acknowledged before the outage; their calls ring when the database goes away.
    const before = await mapLimit(Array.from({ length: BEFORE }, (_, i) => i), 10, (i) => smoke(gateway.baseUrl, webhookKey, sensorOf(i), `evt-outage-${i}`));
    for (const reply of before) expect(reply.status).toBe(202);
    await until('the calls reach the switch', () => peer.originates.length >= BEFORE, 20_000, 20);

    proxy.cut();
    const cutAt = Date.now();
    const during: { status: number; retryAfter: string | null; ms: number }[] = [];
    let ready: Reply | undefined;
    let healthy: Reply | undefined;
    let i = 0;
    while (Date.now() - cutAt < profile.outageMs - 1_500) {
      const started = Date.now();
      const reply = await smoke(gateway.baseUrl, webhookKey, sensorOf(BEFORE + (i % DURING)), `evt-outage-${BEFORE + (i % DURING)}`);
      during.push({ status: reply.status, retryAfter: reply.headers.get('retry-after'), ms: Date.now() - started });
      i++;
      if (!ready) ready = await api(gateway.baseUrl, 'GET', '/readyz');
      if (!healthy) healthy = await api(gateway.baseUrl, 'GET', '/healthz');
      await sleep(200);
    }
    await sleep(Math.max(0, profile.outageMs - (Date.now() - cutAt)));
    proxy.restore();

    // While it lasted: 503 with Retry-After, answered within the pool's connection timeout.
    expect(during.length).toBeGreaterThan(3);
    for (const reply of during) {
      expect(reply.status).toBe(503);
      expect(reply.retryAfter).toMatch(/^\d+$/);
      expect(reply.ms).toBeLessThan(8_000);
    }
    expect(ready?.status).toBe(503);
    expect((ready?.body.checks as Record<string, { ok: boolean }> | undefined)?.database?.ok).toBe(false);
    expect(healthy?.status).toBe(200);

    // Recovery by itself: ready again, and the events refused during the outage are taken now.
    await until('/readyz is ready again', async () => (await api(gateway.baseUrl, 'GET', '/readyz')).status === 200, 30_000, 250);
    const counters = { failedAttempts: 0 };
    const after = await mapLimit(Array.from({ length: DURING }, (_, k) => BEFORE + k), 5, (k) =>
      untilAcknowledged<EventReply>(() => smoke(gateway.baseUrl, webhookKey, sensorOf(k), `evt-outage-${k}`), counters),
    );
    for (const reply of after) expect(reply.status).toBe(202);

    const alarmIds = [...before, ...after].map((reply) => reply.body.alarm_ids![0]!);
    const calls = await untilSettled(run, alarmIds, 60_000);
    const resolved = await run.db.selectFrom('alarms').select('id').where('id', 'in', alarmIds).where('status', '=', 'resolved').execute();
    expect(resolved).toHaveLength(alarmIds.length);
    const ledger = await eventLedger(run, alarmIds.map((_, k) => `evt-outage-${k}`));
    expect(ledger.stored).toBe(BEFORE + DURING);
    expect([...ledger.logged.values()].every((count) => count === 1)).toBe(true);
    const { redials, originates } = checkNoDoubleCalls(peer, calls);
    // The calls were on the switch all along and their ends were recorded late, not lost: no re-dial.
    expect(redials).toBe(0);
    expect(originates).toBe(BEFORE + DURING);
    report('database-outage', {
      outage_ms: profile.outageMs,
      acknowledged_before: BEFORE,
      requests_during: during.length,
      answered_503_with_retry_after: during.filter((reply) => reply.status === 503 && reply.retryAfter).length,
      answered_5xx_other: during.filter((reply) => reply.status >= 500 && reply.status !== 503).length,
      slowest_answer_ms: Math.max(...during.map((reply) => reply.ms)),
      lost: BEFORE + DURING - ledger.stored,
      redials,
    });
  });
});
