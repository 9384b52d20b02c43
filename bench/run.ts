/**
 * `npm run bench` (full, about 10 minutes) and `npm run bench -- --quick` (about 2 minutes).
 *
 * Runs the gateway as the real process against the real PostgreSQL (BENCH_DATABASE_URL, default
 * the local server's `bench` database, one schema per scenario) and the embedded PGlite, with the
 * load generators and the fake peers (speakers, FreeSWITCH Event Socket) in processes of their
 * own, next to the baseline (bench/baseline-server.ts) measured in the same run on the same
 * database. Checks at the end of each scenario that every accepted request's work exists.
 * Prints a table, writes JSON, and (full runs) regenerates docs/benchmarks.md.
 *
 * Options: --quick (smaller sizes, shorter runs), --profile (gateways run with --cpu-prof; the
 * profiles and their hot spots land in bench/results/profiles), --only S1,S3,... (a subset; S4 and
 * S5 share their data, S2 needs S1's rate or --rate), --docs (write docs/ even in quick mode).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { openStorage, quoteIdent, type Storage } from '../src/storage/database.js';
import { migrate } from '../src/storage/migrate.js';
import { systemClock } from '../src/clock/clock.js';
import { loadConfig } from '../src/config/config.js';
import { RetentionCleaner } from '../src/retention/retention.js';
import type { ClosedLoopResult } from './load/closed-loop.js';
import type { LoadTarget } from './load/bodies.js';
import { sensorId } from './load/bodies.js';
import type { PacedResult } from './load/paced.js';
import type { OriginateRecord } from './peers/esl.js';
import type { SpeakerRecord } from './peers/speakers.js';
import { repoRoot, startChild, type BenchChild } from './support/child.js';
import { nowMs } from './support/clock.js';
import { cpuSeconds, startBenchGateway, type BenchGateway } from './support/gateway.js';
import { writeReport, type BenchResults, type Figure } from './support/report.js';
import { summarizeProfile } from './support/profile.js';
import { createKeys, loadEventLogs, loadSensors, loadSpeakers, type BenchKeys } from './support/setup.js';
import { median, percentile, round, summarize } from './support/stats.js';

const { values: options } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    docs: { type: 'boolean', default: false },
    only: { type: 'string' },
    rate: { type: 'string' },
  },
});
const quick = options.quick;
const only = options.only ? new Set(options.only.split(',').map((s) => s.trim().toUpperCase())) : undefined;
const wants = (scenario: string) => !only || only.has(scenario);

const size = quick
  ? { runs: 1, runS: 4, warmupS: 2, pacedS: 5, sensors: 10_000, numbers: 1_000, bigSensors: 100_000, logRows: 1_000_000, queries: 100 }
  : { runs: 3, runS: 8, warmupS: 3, pacedS: 10, sensors: 10_000, numbers: 1_000, bigSensors: 1_000_000, logRows: 10_000_000, queries: 300 };
const CONNECTIONS = 50;
/** Rows per retention statement: the product's default. */
const RETENTION_BATCH = loadConfig({}).RETENTION_BATCH_SIZE;
const S3_RATE = 200;
const ADMIN_KEY = `tig_bench_admin_${'x'.repeat(24)}`;
const SPEAKER_SECRET = `whsec_${Buffer.from('bench speakers share this secret!').toString('base64')}`;
const databaseUrl = process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/bench';
const resultsDir = path.join(repoRoot, 'bench', 'results');
const profileDir = options.profile ? path.join(resultsDir, 'profiles', new Date().toISOString().replace(/[:.]/g, '-')) : undefined;
mkdirSync(resultsDir, { recursive: true });

const started = Date.now();
const log = (message: string) => console.log(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s] ${message}`);
const children: Array<{ stop(): Promise<void> }> = [];
const figures: Figure[] = [];
const details: Record<string, unknown> = {};

// ---- helpers ------------------------------------------------------------------------------------

function gatewayUrlFor(schema: string): string {
  return `${databaseUrl}${databaseUrl.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/** A fresh, migrated schema on PostgreSQL (or a fresh PGlite folder), open in this process for setup. */
async function freshPostgres(schema: string): Promise<Storage> {
  const admin = await openStorage({ databaseUrl });
  await admin.withSession((session) => session.script(`drop schema if exists ${quoteIdent(schema)} cascade`));
  await admin.close();
  const storage = await openStorage({ databaseUrl, schema, poolSize: 2 });
  await migrate(storage);
  return storage;
}

async function freshPGlite(dir: string): Promise<Storage> {
  rmSync(dir, { recursive: true, force: true });
  const storage = await openStorage({ dataDir: dir });
  await migrate(storage);
  return storage;
}

/** A closed-loop run; with `pid`, also the CPU that process used per accepted request (ms). */
async function closedLoop(target: LoadTarget, durationS: number, pid?: number): Promise<ClosedLoopResult & { cpuMsPerRequest?: number }> {
  const before = pid ? cpuSeconds(pid) : 0;
  const child = await startChild('load/closed-loop.ts', [JSON.stringify({ ...target, connections: CONNECTIONS, durationS })], { waitReady: false });
  const result = await child.result<ClosedLoopResult>();
  return pid ? { ...result, cpuMsPerRequest: round(((cpuSeconds(pid) - before) * 1000) / Math.max(1, result.accepted), 2) } : result;
}

async function paced(target: LoadTarget, rate: number, durationS: number, warmupS = 0): Promise<PacedResult> {
  const child = await startChild('load/paced.ts', [JSON.stringify({ ...target, rate, durationS, warmupS })], { waitReady: false });
  return child.result<PacedResult>();
}

async function getJson<T>(url: string, key?: string): Promise<T> {
  const response = await fetch(url, key ? { headers: { 'x-api-key': key } } : {});
  if (!response.ok) throw new Error(`GET ${url}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await sleep(250);
  }
  log(`gave up waiting for ${what} after ${timeoutMs / 1000} s`);
  return false;
}

/** Alarms settle (the mock or the peer answers their calls, and require_ack is false). */
async function waitAlarmsSettled(gateway: BenchGateway, timeoutMs = 60_000): Promise<boolean> {
  return waitFor(
    'alarms to settle',
    async () => (await getJson<{ items: unknown[] }>(`${gateway.url}/api/v1/alarms?status=active&limit=1`, ADMIN_KEY)).items.length === 0,
    timeoutMs,
  );
}

interface IntakeCheck {
  accepted202: number;
  deviceEvents: number;
  alarms: number;
  alarmIdsAnswered: number;
  alarmsWithoutCall: number;
  callsOpen: number;
  callsCompleted: number;
  lost: number;
  extra: number;
}

async function checkIntake(storage: Storage, accepted202: number): Promise<IntakeCheck> {
  const [row] = await storage.withSession((session) =>
    session.query<Record<string, number>>(`select
      (select count(*) from device_events)::int as "deviceEvents",
      (select coalesce(sum(jsonb_array_length(outcome->'alarm_ids')), 0) from device_events)::int as "alarmIdsAnswered",
      (select count(*) from alarms)::int as alarms,
      (select count(*) from alarms a where not exists (select 1 from calls c where c.alarm_id = a.id))::int as "alarmsWithoutCall",
      (select count(*) from calls where status in ('queued', 'dialing', 'ringing', 'answered'))::int as "callsOpen",
      (select count(*) from calls where status = 'completed')::int as "callsCompleted"`),
  );
  const r = row!;
  return {
    accepted202,
    deviceEvents: r.deviceEvents!,
    alarms: r.alarms!,
    alarmIdsAnswered: r.alarmIdsAnswered!,
    alarmsWithoutCall: r.alarmsWithoutCall!,
    callsOpen: r.callsOpen!,
    callsCompleted: r.callsCompleted!,
    // Every 202 must be a committed event whose alarms exist and were dialled.
    lost: Math.max(0, accepted202 - r.deviceEvents!) + Math.abs(r.alarmIdsAnswered! - r.alarms!) + r.alarmsWithoutCall! + r.callsOpen!,
    extra: Math.max(0, r.deviceEvents! - accepted202),
  };
}

/**
 * S1 on one database: warm-up, then baseline and gateway runs alternately (the gateway's
 * background work from one run settles before the baseline's next), medians of each.
 */
async function webhookThroughput(
  label: string,
  gateway: BenchGateway,
  baseline: BenchChild<{ url: string }> | undefined,
  keys: BenchKeys,
  population: number,
): Promise<{ gateway: number; baseline: number | undefined; accepted: number; runs: Array<ClosedLoopResult & { cpuMsPerRequest?: number }>; baselineRuns: Array<ClosedLoopResult & { cpuMsPerRequest?: number }> }> {
  let offset = 0;
  let accepted = 0;
  const target = (url: string, prefix: string): LoadTarget => ({ kind: 'webhook', url, key: keys.webhook, idPrefix: prefix, population, offset });
  const warm = await closedLoop(target(gateway.url, `${label}-warm`), size.warmupS);
  accepted += warm.accepted;
  offset += warm.accepted + warm.non2xx;
  if (baseline) await closedLoop(target(baseline.ready.url, `${label}-base-warm-${Date.now()}`), size.warmupS);
  await waitAlarmsSettled(gateway);
  const runs: Array<ClosedLoopResult & { cpuMsPerRequest?: number }> = [];
  const baselineRuns: Array<ClosedLoopResult & { cpuMsPerRequest?: number }> = [];
  for (let i = 0; i < size.runs; i++) {
    if (baseline) {
      const base = await closedLoop(target(baseline.ready.url, `${label}-base-${Date.now()}-${i}`), size.runS, baseline.process.pid);
      baselineRuns.push(base);
      log(`${label} baseline run ${i + 1}: ${round(base.acceptedPerS)} /s, ${base.cpuMsPerRequest} ms CPU each (p99 ${base.latencyMs.p99} ms, non-2xx ${base.non2xx}, errors ${base.errors})`);
    }
    // The gateway's CPU per webhook includes the background work of earlier webhooks (their calls).
    const run = await closedLoop(target(gateway.url, `${label}-run${i}`), size.runS, gateway.pid);
    runs.push(run);
    accepted += run.accepted;
    offset += run.accepted + run.non2xx;
    log(`${label} gateway run ${i + 1}: ${round(run.acceptedPerS)} /s, ${run.cpuMsPerRequest} ms CPU each (p99 ${run.latencyMs.p99} ms, non-2xx ${run.non2xx}, errors ${run.errors})`);
    await waitAlarmsSettled(gateway);
  }
  return {
    gateway: median(runs.map((r) => r.acceptedPerS)),
    baseline: baseline ? median(baselineRuns.map((r) => r.acceptedPerS)) : undefined,
    accepted,
    runs,
    baselineRuns,
  };
}

/**
 * What the speakers received from record `since` on, and how many records they hold. Read from an
 * index: the whole list, polled every 250 ms, grew with every run to tens of thousands of records,
 * and its serialising took the CPU the gateway was being measured on.
 */
async function speakerRecords(speakers: BenchChild<{ url: string }>, since: number): Promise<{ records: SpeakerRecord[]; total: number }> {
  return getJson<{ records: SpeakerRecord[]; total: number }>(`${speakers.ready.url}/_records?since=${since}`);
}

/**
 * S5's second half: the product's retention pass (the same RetentionCleaner the gateway runs, here
 * in the bench's process as a second instance would run it) deletes the oldest event-log rows
 * while the intake takes S1's load on the same database. The intake's run with the deletion is
 * compared with a run just before it without; the deletion's pace is measured too.
 */
async function retentionUnderIntake(storage: Storage, gateway: BenchGateway, keys: BenchKeys, acceptedBefore: number) {
  // The event-log rows span 30 days: those older than 28 days (a fifteenth of them) expire.
  const expired = Number(
    (await storage.withSession((s) => s.query<{ n: number }>(`select count(*)::int as n from event_logs where at < now() - interval '28 days'`)))[0]!.n,
  );
  const target = (prefix: string): LoadTarget => ({ kind: 'webhook', url: gateway.url, key: keys.webhook, idPrefix: `${prefix}-${Date.now()}`, population: size.bigSensors, offset: 0 });
  const without = await closedLoop(target('S5-intake'), size.runS, gateway.pid);
  await waitAlarmsSettled(gateway);
  const quiet = { info() {}, debug() {}, error(obj: object, msg?: string) { log(`S5 retention: ${msg} ${JSON.stringify(obj)}`); } };
  const cleaner = new RetentionCleaner(
    { db: storage.db, clock: systemClock, logger: quiet },
    { eventLogDays: 28, callDays: 0, notificationDays: 0, batchSize: RETENTION_BATCH, intervalMs: 86_400_000 },
  );
  const started = nowMs();
  const pass = cleaner.runPass();
  const during = await closedLoop(target('S5-retention'), size.runS, gateway.pid);
  const deletedDuringRun = cleaner.stats.deleted.event_logs;
  const runMs = nowMs() - started;
  // The rest of the pass, to its end: every expired row goes.
  const deleted = await pass;
  const passMs = nowMs() - started;
  await waitAlarmsSettled(gateway);
  const left = Number((await storage.withSession((s) => s.query<{ n: number }>(`select count(*)::int as n from event_logs where at < now() - interval '28 days' - interval '1 minute'`)))[0]!.n);
  const check = await checkIntake(storage, acceptedBefore + without.accepted + during.accepted);
  const ratio = during.acceptedPerS / without.acceptedPerS;
  const result = {
    expired,
    batchSize: RETENTION_BATCH,
    deletedDuringRun,
    deletedPerSDuringRun: round(deletedDuringRun / (runMs / 1000)),
    deletedInPass: deleted.event_logs,
    passMs: Math.round(passMs),
    leftExpired: left,
    intakeWithout: { acceptedPerS: round(without.acceptedPerS), latencyMs: without.latencyMs, non2xx: without.non2xx, errors: without.errors },
    intakeDuring: { acceptedPerS: round(during.acceptedPerS), latencyMs: during.latencyMs, non2xx: during.non2xx, errors: during.errors },
    check,
  };
  log(`S5 retention: ${deletedDuringRun} of ${expired} expired rows deleted during the intake run (${result.deletedPerSDuringRun}/s), all ${deleted.event_logs} in ${Math.round(passMs)} ms; intake ${round(during.acceptedPerS)}/s (p99 ${during.latencyMs.p99} ms, max ${during.latencyMs.max} ms) against ${round(without.acceptedPerS)}/s (p99 ${without.latencyMs.p99} ms, max ${without.latencyMs.max} ms) without`);
  figures.push({
    id: 'S5',
    name: `Intake while retention deletes expired event-log rows (${deletedDuringRun.toLocaleString('en')} deleted during the run)`,
    value: round(during.acceptedPerS),
    unit: 'webhooks/s',
    ratio: round(ratio, 2),
    ratioOf: 'the same run without retention',
    target: 'no stall: ≥ 0.8× without, max latency ≤ 1 s',
    met: ratio >= 0.8 && during.latencyMs.max <= 1_000 && during.non2xx === 0 && during.errors === 0 && check.lost === 0 && left === 0,
    note: `p99 ${during.latencyMs.p99} ms (without: ${without.latencyMs.p99} ms), ${result.deletedPerSDuringRun} rows/s deleted, lost ${check.lost}`,
  });
  return result;
}

/**
 * S3 (and S4's calls): `size.runs` runs of incoming calls at 200/s, one after the other; the
 * figures are the medians of the runs' percentiles (one second of a shared machine's stall moves a
 * single run's p99), every run's kept in the details.
 */
async function incomingCallRuns(label: string, gateway: BenchGateway, speakers: BenchChild<{ url: string }>, keys: BenchKeys, storage: Storage | undefined) {
  const runs: Awaited<ReturnType<typeof incomingCalls>>[] = [];
  // A warm-up before the first run only, not measured: the gateway's first second pays for its
  // cold start (compiling the code paths, opening database and speaker connections), a one-time cost.
  for (let i = 0; i < size.runs; i++) runs.push(await incomingCalls(`${label}-run${i + 1}`, gateway, speakers, keys, storage, i === 0 ? size.warmupS : 0));
  const latency = medianOfRuns(runs.map((run) => run.latency));
  const checks = runs.map((run) => run.check);
  const check = {
    sent: sumOf(checks, (c) => c.sent),
    accepted202: sumOf(checks, (c) => c.accepted202),
    expectedNotifications: sumOf(checks, (c) => c.expectedNotifications),
    distinct: sumOf(checks, (c) => c.distinct),
    lost: sumOf(checks, (c) => c.lost),
    duplicates: sumOf(checks, (c) => c.duplicates),
  };
  log(`${label}: p99 of the runs ${runs.map((run) => run.latency.p99).join(', ')} ms; median ${latency.p99} ms`);
  return { latency, check, runs };
}

function sumOf<T>(items: readonly T[], pick: (item: T) => number): number {
  return items.reduce((total, item) => total + pick(item), 0);
}

/** The median of each percentile over several runs' summaries. */
function medianOfRuns(summaries: ReturnType<typeof summarize>[]) {
  return {
    runs: summaries.length,
    p50: round(median(summaries.map((each) => each.p50)), 2),
    p90: round(median(summaries.map((each) => each.p90)), 2),
    p99: round(median(summaries.map((each) => each.p99)), 2),
    p99OfEachRun: summaries.map((each) => each.p99),
    max: Math.max(...summaries.map((each) => each.max)),
  };
}

/** One run of incoming calls at 200/s, each announced on the number's three speakers. */
async function incomingCalls(label: string, gateway: BenchGateway, speakers: BenchChild<{ url: string }>, keys: BenchKeys, storage: Storage | undefined, warmupS: number) {
  const prefix = `${label}-${Date.now()}`;
  const since = (await speakerRecords(speakers, Number.MAX_SAFE_INTEGER)).total;
  const result = await paced({ kind: 'incoming-call', url: gateway.url, key: keys.telephony, idPrefix: prefix, population: size.numbers, offset: 0 }, S3_RATE, size.pacedS, warmupS);
  const expected = result.accepted * 3;
  const sentAt = new Map(result.sends.map(([id, at]) => [id, at]));
  let mine: SpeakerRecord[] = [];
  await waitFor(
    `${label} notifications`,
    async () => {
      mine = (await speakerRecords(speakers, since)).records.filter((r) => r.callId.startsWith(`${prefix}-`));
      return new Set(mine.map((r) => `${r.callId}/${r.deviceId}`)).size >= expected;
    },
    60_000,
  );
  const distinct = new Set(mine.map((r) => `${r.callId}/${r.deviceId}`)).size;
  const latencies = mine.map((r) => r.at - sentAt.get(r.callId)!);
  let delivered: number | undefined;
  if (storage) {
    const [row] = await storage.withSession((s) =>
      s.query<{ n: number }>(`select count(*)::int as n from notifications where status = 'delivered' and call_id like $1`, [`${prefix}-%`]),
    );
    delivered = row!.n;
  }
  const check = { sent: result.sent, accepted202: result.accepted, statuses: result.statuses, errors: result.errors, expectedNotifications: expected, received: mine.length, distinct, deliveredInDb: delivered, lost: expected - distinct, duplicates: mine.length - distinct, loadLagMaxMs: round(result.maxLagMs, 2) };
  log(`${label}: ${result.accepted}/${result.sent} calls accepted, ${distinct}/${expected} notifications, p99 ${round(percentile(latencies, 99), 2)} ms`);
  // Per second of sending: whether the tail is spread over the run or is one stall.
  const t0 = Math.min(...result.sends.map(([, at]) => at));
  const bySecond = new Map<number, number[]>();
  for (const r of mine) {
    const second = Math.floor((sentAt.get(r.callId)! - t0) / 1000);
    bySecond.set(second, [...(bySecond.get(second) ?? []), r.at - sentAt.get(r.callId)!]);
  }
  const perSecond = [...bySecond].sort(([a], [b]) => a - b).map(([second, values]) => ({ second, p50: round(percentile(values, 50), 1), p99: round(percentile(values, 99), 1) }));
  log(`${label} p99 per second of sending: ${perSecond.map((each) => each.p99).join(' ')} ms`);
  return { latency: summarize(latencies), response: result.response, check, perSecond };
}

// ---- the run ------------------------------------------------------------------------------------

/** Runs one group of scenarios; a failure is reported in the results and the next group still runs. */
async function scenario(name: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    log(`${name} failed: ${(error as Error).stack ?? String(error)}`);
    figures.push({ id: name, name: `${name} could not be measured: ${(error as Error).message}`, value: Number.NaN, unit: '', target: '', met: false });
  }
}

async function main(): Promise<void> {
  log(`${quick ? 'quick' : 'full'} run against ${databaseUrl.replace(/:[^:@/]+@/, ':***@')} and PGlite${profileDir ? `, profiling into ${profileDir}` : ''}`);
  const machine = await describeMachine();
  const speakers = await startChild<{ url: string }>('peers/speakers.ts', [SPEAKER_SECRET]);
  children.push(speakers);
  const gatewayEnv = { ADMIN_API_KEY: ADMIN_KEY, TELEPHONY: 'mock' };
  let s1Gateway: number | undefined;
  let s1Result: Awaited<ReturnType<typeof webhookThroughput>> | undefined;
  let s3Result: Awaited<ReturnType<typeof incomingCallRuns>> | undefined;

  // S1, S3, S7: 10,000 sensors, PostgreSQL, mock telephony.
  if (wants('S1') || wants('S3') || wants('S7')) await scenario('S1, S3, S7', async () => {
    const schema = 'bench_10k';
    const storage = await freshPostgres(schema);
    await storage.withSession(async (s) => {
      await loadSensors(s, size.sensors);
      await loadSpeakers(s, size.numbers, speakers.ready.url, SPEAKER_SECRET);
    });
    const keys = await storage.withSession(createKeys);
    log(`S1: ${size.sensors} sensors with a rule, ${size.numbers} numbers with 3 speakers each`);
    const gateway = await startBenchGateway({ ...gatewayEnv, DATABASE_URL: gatewayUrlFor(schema) }, { cpuProfileDir: profileDir });
    children.push(gateway);
    // S1 only when asked (or for S7, which spans S1 and S3): `--only S3` measures S3 alone.
    if (wants('S1') || wants('S7')) {
      const baseline = await startChild<{ url: string }>('baseline-server.ts', [databaseUrl, schema]);
      children.push(baseline);
      s1Result = await webhookThroughput('S1', gateway, baseline, keys, size.sensors);
      s1Gateway = s1Result.gateway;
      await baseline.stop();
      const s1Check = await checkIntake(storage, s1Result.accepted);
      details.S1 = { ...s1Result, check: s1Check };
      figures.push({
        id: 'S1',
        name: `Smoke webhooks, ${size.sensors.toLocaleString('en')} sensors with a rule, ${CONNECTIONS} clients (PostgreSQL)`,
        value: round(s1Result.gateway),
        unit: 'webhooks/s',
        baseline: s1Result.baseline === undefined ? undefined : round(s1Result.baseline),
        ratio: s1Result.baseline ? round(s1Result.gateway / s1Result.baseline, 2) : undefined,
        target: '≥ 1.0× baseline (stretch ≥ 2×), every 202 durable',
        met: s1Result.baseline !== undefined && s1Result.gateway >= s1Result.baseline && s1Check.lost === 0,
        note: `median of ${size.runs} × ${size.runS} s; gateway p99 ${median(s1Result.runs.map((r) => r.latencyMs.p99))} ms; CPU per request: gateway ${median(s1Result.runs.map((r) => r.cpuMsPerRequest ?? Number.NaN))} ms, baseline ${median(s1Result.baselineRuns.map((r) => r.cpuMsPerRequest ?? Number.NaN))} ms; verified: ${s1Check.deviceEvents} events for ${s1Check.accepted202} 202s, ${s1Check.alarms} alarms, lost ${s1Check.lost}`,
      });
      log(`S1 check: ${JSON.stringify(s1Check)}`);
    }

    s3Result = await incomingCallRuns('S3', gateway, speakers, keys, storage);
    details.S3 = s3Result;
    figures.push({
      id: 'S3',
      name: `Incoming calls at ${S3_RATE}/s, 3 HTTP speakers per number: POST → each signed notification received`,
      value: s3Result.latency.p99,
      unit: 'ms p99',
      target: 'p99 ≤ 20 ms, 0 lost',
      met: s3Result.latency.p99 <= 20 && s3Result.check.lost === 0 && s3Result.check.accepted202 === s3Result.check.sent,
      note: `median of ${s3Result.latency.runs} runs (p99 of each: ${s3Result.latency.p99OfEachRun.join(', ')} ms); p50 ${s3Result.latency.p50} ms; ${s3Result.check.distinct}/${s3Result.check.expectedNotifications} notifications, lost ${s3Result.check.lost}, duplicates ${s3Result.check.duplicates}`,
    });
    const peak = gateway.peakRssMb();
    details.S7 = { peakRssMb: peak };
    if (wants('S7')) figures.push({ id: 'S7', name: 'Peak resident memory of the gateway during S1 and S3 (VmHWM)', value: round(peak), unit: 'MB', target: '≤ 200 MB', met: peak <= 200 });
    await gateway.stop();
    await storage.close();
  });

  // S2: webhook -> originate reaching the Event Socket peer, at half of S1's rate.
  if (wants('S2')) await scenario('S2', async () => {
    const rate = options.rate ? Number(options.rate) : Math.max(10, Math.round((s1Gateway ?? 200) / 2));
    const schema = 'bench_esl';
    const storage = await freshPostgres(schema);
    await storage.withSession((s) => loadSensors(s, size.sensors));
    const keys = await storage.withSession(createKeys);
    const esl = await startChild<{ eslUrl: string; control: string }>('peers/esl.ts', ['ClueCon']);
    children.push(esl);
    const gateway = await startBenchGateway(
      { ADMIN_API_KEY: ADMIN_KEY, TELEPHONY: 'freeswitch', FREESWITCH_ESL_URL: esl.ready.eslUrl, FREESWITCH_ESL_PASSWORD: 'ClueCon', DATABASE_URL: gatewayUrlFor(schema) },
      { cpuProfileDir: profileDir },
    );
    children.push(gateway);
    await waitFor('the gateway to reach FreeSWITCH', async () => (await fetch(`${gateway.url}/readyz`)).ok, 15_000);
    log(`S2: webhooks at ${rate}/s through FreeSWITCH (Event Socket peer)`);
    // Several runs, one after the other once the last one's alarms have ended; a warm-up at the
    // same rate before the first (the cold start, as in S3), not measured.
    const runs: { latency: ReturnType<typeof summarize>; response: PacedResult['response']; sent: number; statuses: PacedResult['statuses']; measuredAlarms: number; originates: number; distinctOriginates: number }[] = [];
    let acceptedInSchema = 0;
    for (let i = 0; i < size.runs; i++) {
      const prefix = `S2-${Date.now()}-run${i + 1}`;
      // The peer's records from this run on (the whole list grows with every run; see speakerRecords).
      const since = (await getJson<{ total: number }>(`${esl.ready.control}/originates?since=${Number.MAX_SAFE_INTEGER}`)).total;
      const result = await paced({ kind: 'webhook', url: gateway.url, key: keys.webhook, idPrefix: prefix, population: size.sensors, offset: 0 }, rate, size.pacedS, i === 0 ? size.warmupS : 0);
      acceptedInSchema += result.warm.accepted + result.accepted;
      const sentAt = new Map(result.sends.map(([id, at]) => [id, at]));
      const calls = await storage.withSession((s) =>
        s.query<{ id: string; event_id: string }>(`select c.id, a.event_id from calls c join alarms a on a.id = c.alarm_id where a.event_id like $1`, [`${prefix}-%`]),
      );
      let originates: OriginateRecord[] = [];
      const callIds = new Set(calls.map((c) => c.id));
      await waitFor(
        'originates',
        async () => {
          originates = (await getJson<{ records: OriginateRecord[] }>(`${esl.ready.control}/originates?since=${since}`)).records.filter((o) => callIds.has(o.callId));
          return originates.length >= calls.length;
        },
        30_000,
      );
      await waitAlarmsSettled(gateway, 30_000);
      const eventOf = new Map(calls.map((c) => [c.id, c.event_id]));
      const latencies = originates.map((o) => o.at - sentAt.get(eventOf.get(o.callId)!)!);
      const run = {
        latency: summarize(latencies),
        response: result.response,
        sent: result.sent,
        statuses: result.statuses,
        measuredAlarms: new Set(calls.map((c) => c.event_id)).size,
        originates: originates.length,
        distinctOriginates: new Set(originates.map((o) => o.callId)).size,
      };
      runs.push(run);
      log(`S2 run ${i + 1}: p99 ${run.latency.p99} ms, p50 ${run.latency.p50} ms (the 202 itself: p50 ${run.response.p50} ms)`);
    }
    // The intake check covers the warm-up too; the originates are the measured webhooks' alarms'.
    const check = {
      ...(await checkIntake(storage, acceptedInSchema)),
      sent: sumOf(runs, (run) => run.sent),
      measuredAlarms: sumOf(runs, (run) => run.measuredAlarms),
      originates: sumOf(runs, (run) => run.originates),
      distinctOriginates: sumOf(runs, (run) => run.distinctOriginates),
    };
    const latency = medianOfRuns(runs.map((run) => run.latency));
    details.S2 = { rate, latency, runs, check };
    log(`S2: p99 ${latency.p99} ms; ${JSON.stringify(check)}`);
    figures.push({
      id: 'S2',
      name: `Webhook → originate at the Event Socket peer, at ${rate}/s (half of S1)`,
      value: latency.p99,
      unit: 'ms p99',
      target: 'p99 ≤ 20 ms',
      met: latency.p99 <= 20 && check.lost === 0 && check.distinctOriginates === check.measuredAlarms && check.originates === check.measuredAlarms,
      note: `median of ${latency.runs} runs (p99 of each: ${latency.p99OfEachRun.join(', ')} ms); p50 ${latency.p50} ms; ${check.measuredAlarms} alarms measured, ${check.originates} originates (${check.distinctOriginates} distinct), lost ${check.lost}`,
    });
    await gateway.stop();
    await esl.stop();
    await storage.close();
  });

  // S4 and S5: a million sensors, then ten million event-log rows.
  if (wants('S4') || wants('S5')) await scenario('S4, S5', async () => {
    const schema = 'bench_big';
    const storage = await freshPostgres(schema);
    let t = Date.now();
    await storage.withSession(async (s) => {
      await loadSensors(s, size.bigSensors);
      await loadSpeakers(s, size.numbers, speakers.ready.url, SPEAKER_SECRET);
    });
    const keys = await storage.withSession(createKeys);
    log(`S4: ${size.bigSensors.toLocaleString('en')} sensors with a rule loaded in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const gateway = await startBenchGateway({ ...gatewayEnv, DATABASE_URL: gatewayUrlFor(schema) }, { cpuProfileDir: profileDir });
    children.push(gateway);
    /** Every 202 this schema gave so far (its intake check counts them all). */
    let acceptedInSchema = 0;
    if (wants('S4')) {
      const big = await webhookThroughput('S4', gateway, undefined, keys, size.bigSensors);
      acceptedInSchema += big.accepted;
      const check = await checkIntake(storage, acceptedInSchema);
      const s3Big = await incomingCallRuns('S4-calls', gateway, speakers, keys, storage);
      // The device lookup the intake makes, straight on the database.
      const lookups: number[] = [];
      await storage.withSession(async (s) => {
        for (let i = 0; i < 2000; i++) {
          const id = sensorId(Math.floor(Math.random() * size.bigSensors));
          const before = nowMs();
          await s.query('select * from devices where device_id = $1', [id]);
          lookups.push(nowMs() - before);
        }
      });
      const lookup = summarize(lookups);
      details.S4 = { webhooks: big, check, calls: s3Big, lookup };
      const ratio = s1Gateway ? big.gateway / s1Gateway : undefined;
      figures.push({
        id: 'S4',
        name: `S1 with ${size.bigSensors.toLocaleString('en')} registered sensors`,
        value: round(big.gateway),
        unit: 'webhooks/s',
        ratio: ratio === undefined ? undefined : round(ratio, 2),
        ratioOf: 'S1',
        target: '≥ 0.9× S1',
        met: ratio !== undefined && ratio >= 0.9 && check.lost === 0,
        note: `verified: ${check.deviceEvents} events for ${check.accepted202} 202s, lost ${check.lost}`,
      });
      const callRatio = s3Result ? s3Result.latency.p99 / s3Big.latency.p99 : undefined;
      figures.push({
        id: 'S4',
        name: `S3 with ${size.bigSensors.toLocaleString('en')} registered sensors`,
        value: s3Big.latency.p99,
        unit: 'ms p99',
        ratio: callRatio === undefined ? undefined : round(callRatio, 2),
        ratioOf: 'S3 (p99 of S3 / p99 here)',
        target: '≥ 0.9× S3',
        met: callRatio !== undefined && callRatio >= 0.9 && s3Big.check.lost === 0,
        note: `median of ${s3Big.latency.runs} runs (p99 of each: ${s3Big.latency.p99OfEachRun.join(', ')} ms); lost ${s3Big.check.lost}, duplicates ${s3Big.check.duplicates}`,
      });
      figures.push({ id: 'S4', name: 'Device lookup by device_id (the intake query) among the sensors', value: lookup.p99, unit: 'ms p99', target: 'p99 ≤ 2 ms', met: lookup.p99 <= 2, note: `p50 ${lookup.p50} ms over ${lookup.count} lookups` });
    }
    if (wants('S5')) {
      t = Date.now();
      await storage.withSession((s) => loadEventLogs(s, size.logRows, size.bigSensors, 30));
      log(`S5: ${size.logRows.toLocaleString('en')} event-log rows loaded in ${((Date.now() - t) / 1000).toFixed(1)} s`);
      const rowsPerCorrelation = 5;
      const correlations = Math.floor(size.logRows / rowsPerCorrelation);
      const kinds: Record<string, () => string> = {
        'by device': () => `device_id=${sensorId(Math.floor(Math.random() * size.bigSensors))}`,
        'by correlation id': () => `correlation_id=bench-corr-${Math.floor(Math.random() * correlations)}`,
        'by time range (1 h)': () => {
          const since = Date.now() - Math.random() * 29 * 86_400_000 - 3_600_000;
          return `since=${new Date(since).toISOString()}&until=${new Date(since + 3_600_000).toISOString()}`;
        },
      };
      const queryFigures: Record<string, ReturnType<typeof summarize>> = {};
      for (const [name, query] of Object.entries(kinds)) {
        const latencies: number[] = [];
        for (let i = 0; i < size.queries; i++) {
          const before = nowMs();
          const page = await getJson<{ items: unknown[] }>(`${gateway.url}/api/v1/event-logs?${query()}&limit=50`, ADMIN_KEY);
          latencies.push(nowMs() - before);
          if (i === 0 && page.items.length === 0 && name !== 'by device') log(`S5 ${name}: the first query found nothing`);
        }
        queryFigures[name] = summarize(latencies);
        figures.push({ id: 'S5', name: `Event-log query ${name}, ${size.logRows.toLocaleString('en')} rows (HTTP, 50 per page)`, value: queryFigures[name].p99, unit: 'ms p99', target: 'p99 ≤ 50 ms', met: queryFigures[name].p99 <= 50, note: `p50 ${queryFigures[name].p50} ms over ${size.queries} queries` });
      }
      details.S5 = { rows: size.logRows, queries: queryFigures, retention: await retentionUnderIntake(storage, gateway, keys, acceptedInSchema) };
    }
    await gateway.stop();
    await storage.close();
  });

  // S6: S1 on the embedded PGlite.
  if (wants('S6')) await scenario('S6', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'tig-bench-'));
    const gatewayDir = path.join(root, 'gateway');
    const storage = await freshPGlite(gatewayDir);
    await storage.withSession((s) => loadSensors(s, size.sensors));
    const keys = await storage.withSession(createKeys);
    await storage.close();
    log(`S6: PGlite in ${root} loaded with ${size.sensors} sensors; starting the gateway and the baseline on PGlite`);
    const gateway = await startBenchGateway({ ...gatewayEnv, DATA_DIR: gatewayDir, DATABASE_URL: '' }, { cpuProfileDir: profileDir });
    children.push(gateway);
    const baseline = await startChild<{ url: string }>('baseline-server.ts', [path.join(root, 'baseline')]);
    children.push(baseline);
    const pglite = await webhookThroughput('S6', gateway, baseline, keys, size.sensors);
    await baseline.stop();
    await gateway.stop();
    const after = await openStorage({ dataDir: gatewayDir });
    const check = await checkIntake(after, pglite.accepted);
    await after.close();
    rmSync(root, { recursive: true, force: true });
    details.S6 = { ...pglite, check };
    log(`S6 check: ${JSON.stringify(check)}`);
    figures.push({
      id: 'S6',
      name: `S1 on embedded PGlite (${size.sensors.toLocaleString('en')} sensors, ${CONNECTIONS} clients)`,
      value: round(pglite.gateway),
      unit: 'webhooks/s',
      baseline: pglite.baseline === undefined ? undefined : round(pglite.baseline),
      ratio: pglite.baseline ? round(pglite.gateway / pglite.baseline, 2) : undefined,
      target: '≥ 500 webhooks/s',
      met: pglite.gateway >= 500 && check.lost === 0,
      note: `median of ${size.runs} × ${size.runS} s; verified: ${check.deviceEvents} events for ${check.accepted202} 202s, ${check.alarms} alarms, lost ${check.lost}; the gateway was stopped with alarms still ringing (${check.callsOpen} calls open are counted as lost)`,
    });
  });

  const results: BenchResults = {
    date: new Date().toISOString(),
    command: ['npm run bench', ...(quick || options.only ? ['--'] : []), ...(quick ? ['--quick'] : []), ...(options.only ? [`--only ${options.only}`] : [])].join(' '),
    mode: quick ? 'quick' : 'full',
    durationS: Math.round((Date.now() - started) / 1000),
    machine,
    sizes: size,
    figures,
    details,
  };
  if (profileDir) results.profiles = summarizeProfile(profileDir);
  // A subset (--only) is kept apart: docs/ and <mode>-latest.json hold whole runs only, so the
  // table in docs/benchmarks.md is never a partial run's (unless --docs asks for it).
  const { table } = writeReport(results, {
    resultsDir,
    docs: (!quick && !options.only) || options.docs,
    latest: options.only ? `${results.mode}-only-latest.json` : undefined,
  });
  console.log(`\n${table}\n`);
  log(`done in ${results.durationS} s`);
}

async function describeMachine(): Promise<BenchResults['machine']> {
  const storage = await openStorage({ databaseUrl });
  const { rows } = await sql<{ version: string }>`select version()`.execute(storage.db);
  await storage.close();
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGb: round(totalmem() / 1024 ** 3, 1),
    node: process.version,
    postgres: rows[0]?.version.split(' on ')[0] ?? 'unknown',
    pglite: (JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(path.join(repoRoot, 'node_modules/@electric-sql/pglite/package.json'), 'utf8'))) as { version: string }).version,
  };
}

try {
  await main();
} finally {
  for (const child of children.reverse()) await child.stop().catch(() => {});
}
