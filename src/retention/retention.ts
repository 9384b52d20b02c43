/**
 * Retention: removes rows older than their retention period in the background, in small batches
 * (one short statement each, so no long transaction and no lock held for long), oldest first.
 * Rows still needed are never removed: active alarms and their calls, pending or in-flight
 * notifications, incoming calls that still have notifications, device events of active alarms.
 * Each pass that removed something is logged; the totals are kept in `stats` and announced to
 * `onDeleted` listeners (metrics).
 */
import { sql } from 'kysely';
import type { Clock } from '../clock/clock.js';
import type { Db } from '../storage/database.js';

/** The tables retention removes rows from. */
export const retainedTables = ['event_logs', 'device_events', 'notifications', 'incoming_calls', 'alarms', 'calls'] as const;
export type RetainedTable = (typeof retainedTables)[number];

export interface RetentionPolicy {
  /** Days; 0 keeps rows forever. */
  eventLogDays: number;
  callDays: number;
  notificationDays: number;
  /** Rows per statement. */
  batchSize: number;
  /** Time between passes. */
  intervalMs: number;
  /** Time from start() to the first pass. */
  firstPassDelayMs?: number;
  /** Most statements per table in one pass (the rest waits for the next pass). */
  maxBatchesPerPass?: number;
}

export interface RetentionStats {
  passes: number;
  failedPasses: number;
  /** Rows removed since start, per table. */
  deleted: Record<RetainedTable, number>;
  lastPass: { finishedAt: string; ms: number; deleted: Record<RetainedTable, number> } | null;
}

export type RetentionListener = (table: RetainedTable, rows: number) => void;

interface RetentionLogger {
  info(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const DAY_MS = 86_400_000;

function zeroCounts(): Record<RetainedTable, number> {
  return Object.fromEntries(retainedTables.map((table) => [table, 0])) as Record<RetainedTable, number>;
}

export class RetentionCleaner {
  readonly #listeners: RetentionListener[] = [];
  readonly #stats: RetentionStats = { passes: 0, failedPasses: 0, deleted: zeroCounts(), lastPass: null };
  #cancelTimer: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #stopped = true;
  /** Set by stop(): a pass in progress ends after its current statement. */
  #stopRequested = false;

  constructor(
    private readonly deps: { db: Db; clock: Clock; logger: RetentionLogger },
    private readonly policy: RetentionPolicy,
  ) {}

  /** A copy of the counters. */
  get stats(): RetentionStats {
    return structuredClone(this.#stats);
  }

  /** Called with each batch removed (table, rows): the metrics hook. */
  onDeleted(listener: RetentionListener): void {
    this.#listeners.push(listener);
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#stopRequested = false;
    this.#schedule(this.policy.firstPassDelayMs ?? 60_000);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopRequested = true;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    await this.#running;
  }

  /** Waits for a pass in progress (tests). */
  async settle(): Promise<void> {
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#cancelTimer = this.deps.clock.setTimer(() => {
      this.#cancelTimer = undefined;
      this.#running = this.runPass()
        .then(
          () => undefined,
          () => undefined,
        )
        .finally(() => {
          this.#running = undefined;
          this.#schedule(this.policy.intervalMs);
        });
    }, ms);
  }

  /** One pass over every table; resolves with what it removed. Errors are logged and rethrown. */
  async runPass(): Promise<Record<RetainedTable, number>> {
    const started = performance.now();
    const now = this.deps.clock.now().getTime();
    const deleted = zeroCounts();
    const cutoff = (days: number) => (days > 0 ? new Date(now - days * DAY_MS) : undefined);
    const batch = this.policy.batchSize;
    // An alarm has a handful of calls: fewer alarms per statement keep that statement small.
    const alarmBatch = Math.max(1, Math.floor(batch / 10));
    const steps: { tables: RetainedTable[]; days: number; limit: number; run: (before: Date, limit: number) => Promise<Partial<Record<RetainedTable, number>>> }[] = [
      { tables: ['event_logs'], days: this.policy.eventLogDays, limit: batch, run: (before, limit) => this.#deleteEventLogs(before, limit) },
      { tables: ['device_events'], days: this.policy.eventLogDays, limit: batch, run: (before, limit) => this.#deleteDeviceEvents(before, limit) },
      { tables: ['notifications'], days: this.policy.notificationDays, limit: batch, run: (before, limit) => this.#deleteNotifications(before, limit) },
      // After the notifications: an incoming call goes once it has none left.
      { tables: ['incoming_calls'], days: this.policy.callDays, limit: batch, run: (before, limit) => this.#deleteIncomingCalls(before, limit) },
      { tables: ['alarms', 'calls'], days: this.policy.callDays, limit: alarmBatch, run: (before, limit) => this.#deleteAlarms(before, limit) },
    ];
    try {
      for (const step of steps) {
        const before = cutoff(step.days);
        if (!before) continue;
        for (let round = 0; round < (this.policy.maxBatchesPerPass ?? 1_000); round++) {
          const removed = await step.run(before, step.limit);
          for (const table of step.tables) {
            const rows = removed[table] ?? 0;
            if (rows === 0) continue;
            deleted[table] += rows;
            this.#stats.deleted[table] += rows;
            for (const listener of this.#listeners) listener(table, rows);
          }
          // A batch smaller than asked was the last one; the first table is the one a batch counts.
          if ((removed[step.tables[0]!] ?? 0) < step.limit || this.#stopRequested) break;
        }
      }
    } catch (error) {
      this.#stats.failedPasses++;
      this.deps.logger.error({ err: error, deleted }, 'retention pass failed');
      throw error;
    }
    const ms = Math.round(performance.now() - started);
    this.#stats.passes++;
    this.#stats.lastPass = { finishedAt: this.deps.clock.now().toISOString(), ms, deleted };
    const total = Object.values(deleted).reduce((sum, rows) => sum + rows, 0);
    if (total > 0) this.deps.logger.info({ deleted, ms }, 'retention pass removed expired rows');
    else this.deps.logger.debug({ ms }, 'retention pass found nothing expired');
    return deleted;
  }

  async #count(query: ReturnType<typeof sql<{ n: number }>>): Promise<number> {
    const result = await query.execute(this.deps.db);
    return Number(result.rows[0]?.n ?? 0);
  }

  async #deleteEventLogs(before: Date, limit: number) {
    // `at <` on the outer delete too, so a table partitioned by time prunes to the old partitions.
    const rows = await this.#count(sql<{ n: number }>`
      with gone as (
        delete from event_logs where at < ${before} and id in (
          select id from event_logs where at < ${before} order by at limit ${limit} for update skip locked
        ) returning 1
      ) select count(*)::int as n from gone`);
    return { event_logs: rows };
  }

  async #deleteDeviceEvents(before: Date, limit: number) {
    const rows = await this.#count(sql<{ n: number }>`
      with gone as (
        delete from device_events where event_id in (
          select e.event_id from device_events e
          where e.received_at < ${before}
            and not exists (select 1 from alarms a where a.event_id = e.event_id and a.status = 'active')
          order by e.received_at limit ${limit} for update skip locked
        ) returning 1
      ) select count(*)::int as n from gone`);
    return { device_events: rows };
  }

  async #deleteNotifications(before: Date, limit: number) {
    const rows = await this.#count(sql<{ n: number }>`
      with gone as (
        delete from notifications where status not in ('pending', 'delivering') and id in (
          select id from notifications
          where status not in ('pending', 'delivering') and created_at < ${before}
          order by created_at limit ${limit} for update skip locked
        ) returning 1
      ) select count(*)::int as n from gone`);
    return { notifications: rows };
  }

  async #deleteIncomingCalls(before: Date, limit: number) {
    const rows = await this.#count(sql<{ n: number }>`
      with gone as (
        delete from incoming_calls where call_id in (
          select c.call_id from incoming_calls c
          where c.received_at < ${before}
            and not exists (select 1 from notifications n where n.call_id = c.call_id)
          order by c.received_at limit ${limit} for update skip locked
        ) returning 1
      ) select count(*)::int as n from gone`);
    return { incoming_calls: rows };
  }

  async #deleteAlarms(before: Date, limit: number) {
    // An ended alarm goes with its calls, in one statement (the calls reference the alarm).
    const result = await sql<{ alarms: number; calls: number }>`
      with doomed as (
        select a.id from alarms a
        where a.status <> 'active' and a.ended_at < ${before}
          and not exists (select 1 from calls c where c.alarm_id = a.id and c.status in ('queued', 'dialing', 'ringing', 'answered'))
        order by a.ended_at limit ${limit} for update skip locked
      ),
      gone_calls as (delete from calls where alarm_id in (select id from doomed) returning 1),
      gone_alarms as (delete from alarms where id in (select id from doomed) returning 1)
      select (select count(*)::int from gone_alarms) as alarms, (select count(*)::int from gone_calls) as calls`.execute(this.deps.db);
    const row = result.rows[0];
    return { alarms: Number(row?.alarms ?? 0), calls: Number(row?.calls ?? 0) };
  }
}
