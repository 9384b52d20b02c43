/**
 * Every metric the gateway exposes at `GET /metrics` (Prometheus text format), with its meaning.
 * One registry per app (tests build many apps in one process); the services that count things get
 * this object and call it where the thing happens, after its transaction has committed, so a
 * counter never counts what was rolled back. Gauges of the database's state (job backlog, pool)
 * are read at scrape time. docs/operations.md explains each metric and the alerts to set.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { sql } from 'kysely';
import type { Clock } from '../clock/clock.js';
import type { EventLogEntry } from '../event-log/event-log.js';
import type { Db, PoolUsage } from '../storage/database.js';
import type { TelephonyStatus } from '../telephony/telephony.js';

export const deviceEventOutcomes = ['accepted', 'duplicate', 'unknown_device', 'rejected'] as const;
export type DeviceEventOutcome = (typeof deviceEventOutcomes)[number];
export const alarmOutcomes = ['started', 'suppressed', 'resolved', 'exhausted', 'canceled'] as const;
export type AlarmOutcome = (typeof alarmOutcomes)[number];
export const notificationOutcomes = ['delivered', 'retry', 'failed', 'gone', 'expired'] as const;
export type NotificationOutcome = (typeof notificationOutcomes)[number];
export type Transport = 'http' | 'mqtt';
const transports: readonly Transport[] = ['http', 'mqtt'];
const jobQueues = ['calls', 'notifications'] as const;

/** What the scrape-time gauges read; buildApp supplies it. */
export interface MetricSources {
  db: Db;
  clock: Clock;
  poolUsage: () => PoolUsage;
  telephony: { name: string; status(): TelephonyStatus };
  /** Logged when a scrape-time query fails (the scrape still answers, with `tig_database_up 0`). */
  onCollectError?: (error: unknown) => void;
}

export interface GatewayInfo {
  version: string;
  /** INSTANCE_ID (not `instance`: Prometheus gives that label to the scrape target). */
  instance_id: string;
  database: string;
  telephony: string;
}

/** Hangup causes come from the switch: kept to FreeSWITCH's shape so a label cannot explode. */
function causeLabel(cause: string | null | undefined): string {
  if (!cause) return 'none';
  return /^[A-Z0-9_]{1,64}$/.test(cause) ? cause : 'OTHER';
}

interface Backlog {
  up: boolean;
  due: Record<(typeof jobQueues)[number], number>;
  oldestDueS: Record<(typeof jobQueues)[number], number>;
  callsInFlight: number;
}

export class GatewayMetrics {
  readonly registry = new Registry();

  readonly httpRequestDuration = new Histogram({
    name: 'tig_http_request_duration_seconds',
    help: 'HTTP requests by route pattern, method and status code: time from receipt to the answer sent.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly deviceEvents = new Counter({
    name: 'tig_device_events_total',
    help: 'Device events at the webhook intake by event type and outcome: accepted (recorded, rules run), duplicate (event_id seen before), unknown_device (404), rejected (bad signature, or an event the device type does not report).',
    labelNames: ['event_type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly alarms = new Counter({
    name: 'tig_alarms_total',
    help: 'Alarm outcomes: started, suppressed (a rule matched while its alarm was active or in cooldown), resolved (someone confirmed), exhausted (every number tried, nobody confirmed), canceled.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly calls = new Counter({
    name: 'tig_calls_total',
    help: 'Alarm calls ended, by final status (completed, busy, no_answer, rejected, failed, canceled) and hangup cause (FreeSWITCH cause; OUTCOME_UNKNOWN, DEADLINE_EXCEEDED when the gateway judged it; none for a call canceled before dialing).',
    labelNames: ['status', 'hangup_cause'] as const,
    registers: [this.registry],
  });

  readonly callsDialed = new Counter({
    name: 'tig_calls_dialed_total',
    help: 'Alarm calls claimed and handed to the switch by this instance.',
    registers: [this.registry],
  });

  readonly incomingCalls = new Counter({
    name: 'tig_incoming_calls_total',
    help: 'Incoming-call states recorded (ringing, answered, ended) by source (api, freeswitch); repeats and late states are not counted.',
    labelNames: ['state', 'source'] as const,
    registers: [this.registry],
  });

  readonly notificationLatency = new Histogram({
    name: 'tig_notification_delivery_seconds',
    help: 'Speaker notifications delivered: time from the notification being written (the call report committed) to the speaker accepting it, retries included, by transport.',
    labelNames: ['transport'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  readonly notifications = new Counter({
    name: 'tig_notifications_total',
    help: 'Speaker notification attempts by transport and outcome: delivered, retry (failed, will be tried again), failed (permanent), gone (410), expired (its time ran out undelivered).',
    labelNames: ['transport', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly retentionDeleted = new Counter({
    name: 'tig_retention_deleted_rows_total',
    help: 'Rows removed by retention (EVENT_LOG_RETENTION_DAYS, CALL_RETENTION_DAYS, NOTIFICATION_RETENTION_DAYS), by table.',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });

  readonly telephonyReconnects = new Counter({
    name: 'tig_telephony_reconnects_total',
    help: 'Times the connection to the switch (FreeSWITCH Event Socket) came back after being lost.',
    registers: [this.registry],
  });

  #backlog: Promise<Backlog> | undefined;

  constructor(info: GatewayInfo, sources: MetricSources) {
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'tig_info',
      help: 'Always 1; the labels say which version, instance (INSTANCE_ID), database and telephony this is.',
      labelNames: ['version', 'instance_id', 'database', 'telephony'] as const,
      registers: [this.registry],
    }).set({ ...info }, 1);

    for (const event_type of ['smoke', 'smoke_cleared', 'test']) {
      for (const outcome of deviceEventOutcomes) this.deviceEvents.inc({ event_type, outcome }, 0);
    }
    for (const outcome of alarmOutcomes) this.alarms.inc({ outcome }, 0);
    for (const transport of transports) {
      for (const outcome of notificationOutcomes) this.notifications.inc({ transport, outcome }, 0);
    }
    this.telephonyReconnects.inc(0);

    const telephony = sources.telephony;
    new Gauge({
      name: 'tig_telephony_up',
      help: 'Whether the switch connection is up (1) or not (0): the FreeSWITCH Event Socket is connected and authenticated, or the mock runs.',
      labelNames: ['telephony'] as const,
      registers: [this.registry],
      collect() {
        this.set({ telephony: telephony.name }, telephony.status().ok ? 1 : 0);
      },
    });

    new Gauge({
      name: 'tig_db_pool_connections',
      help: 'Database connections by state: in_use, idle, max (the pool size; 1 for the embedded database).',
      labelNames: ['state'] as const,
      registers: [this.registry],
      collect() {
        const usage = sources.poolUsage();
        this.set({ state: 'in_use' }, usage.inUse);
        this.set({ state: 'idle' }, usage.idle);
        this.set({ state: 'max' }, usage.max);
      },
    });
    new Gauge({
      name: 'tig_db_pool_waiting',
      help: 'Queries waiting for a free database connection.',
      registers: [this.registry],
      collect() {
        this.set(sources.poolUsage().waiting);
      },
    });

    // One query per scrape feeds the gauges below; they are collected together.
    const backlog = () => {
      this.#backlog ??= readBacklog(sources).finally(() => {
        this.#backlog = undefined;
      });
      return this.#backlog;
    };
    new Gauge({
      name: 'tig_database_up',
      help: 'Whether the scrape-time query on the database succeeded (1) or not (0).',
      registers: [this.registry],
      async collect() {
        this.set((await backlog()).up ? 1 : 0);
      },
    });
    new Gauge({
      name: 'tig_jobs_due',
      help: 'Durable jobs due and not yet taken: queued alarm calls (queue="calls") and pending speaker notifications (queue="notifications") whose time has come.',
      labelNames: ['queue'] as const,
      registers: [this.registry],
      async collect() {
        const { up, due } = await backlog();
        if (!up) return this.reset(); // no stale numbers while the database cannot be read
        for (const queue of jobQueues) this.set({ queue }, due[queue]);
      },
    });
    new Gauge({
      name: 'tig_jobs_oldest_due_seconds',
      help: 'How long the oldest due job of each queue has been waiting past its due time (0 when none waits).',
      labelNames: ['queue'] as const,
      registers: [this.registry],
      async collect() {
        const { up, oldestDueS } = await backlog();
        if (!up) return this.reset();
        for (const queue of jobQueues) this.set({ queue }, oldestDueS[queue]);
      },
    });
    new Gauge({
      name: 'tig_calls_in_flight',
      help: 'Alarm calls dialing, ringing or answered right now (all instances).',
      registers: [this.registry],
      async collect() {
        const { up, callsInFlight } = await backlog();
        if (!up) return this.reset();
        this.set(callsInFlight);
      },
    });
  }

  /** Content type of the exposition (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  async exposition(): Promise<string> {
    return this.registry.metrics();
  }

  deviceEvent(eventType: string, outcome: DeviceEventOutcome): void {
    this.deviceEvents.inc({ event_type: eventType, outcome });
  }

  alarm(outcome: AlarmOutcome, count = 1): void {
    if (count > 0) this.alarms.inc({ outcome }, count);
  }

  callEnded(status: string, cause: string | null | undefined): void {
    this.calls.inc({ status, hangup_cause: causeLabel(cause) });
  }

  /** Counts alarm and call outcomes from the event-log rows an escalation transaction committed. */
  escalationSteps(entries: readonly EventLogEntry[]): void {
    for (const entry of entries) {
      switch (entry.type) {
        case 'alarm.started':
          this.alarm('started');
          break;
        case 'rule.suppressed':
          this.alarm('suppressed');
          break;
        case 'alarm.resolved':
        case 'alarm.exhausted':
        case 'alarm.canceled':
          this.alarm(entry.type.slice('alarm.'.length) as AlarmOutcome);
          break;
        case 'call.completed':
        case 'call.failed':
        case 'call.canceled': {
          const details = entry.details ?? {};
          this.callEnded(typeof details.status === 'string' ? details.status : entry.type.slice('call.'.length), typeof details.cause === 'string' ? details.cause : null);
          break;
        }
      }
    }
  }

  notification(transport: Transport, outcome: NotificationOutcome, latencyMs?: number): void {
    this.notifications.inc({ transport, outcome });
    if (outcome === 'delivered' && latencyMs !== undefined) this.notificationLatency.observe({ transport }, latencyMs / 1000);
  }
}

/** The job backlog in one statement; each part is served by a partial index (calls_due, notifications_due, calls_in_flight). */
async function readBacklog(sources: MetricSources): Promise<Backlog> {
  const now = sources.clock.now();
  try {
    const result = await sql<{ calls_due: number; calls_oldest: Date | string | null; notifications_due: number; notifications_oldest: Date | string | null; calls_in_flight: number }>`
      select
        (select count(*) from calls where status = 'queued' and due_at <= ${now})::int as calls_due,
        (select min(due_at) from calls where status = 'queued' and due_at <= ${now}) as calls_oldest,
        (select count(*) from notifications where status = 'pending' and due_at <= ${now})::int as notifications_due,
        (select min(due_at) from notifications where status = 'pending' and due_at <= ${now}) as notifications_oldest,
        (select count(*) from calls where status in ('dialing', 'ringing', 'answered'))::int as calls_in_flight`.execute(sources.db);
    const row = result.rows[0]!;
    const age = (oldest: Date | string | null) => (oldest === null ? 0 : Math.max(0, (now.getTime() - new Date(oldest).getTime()) / 1000));
    return {
      up: true,
      due: { calls: Number(row.calls_due), notifications: Number(row.notifications_due) },
      oldestDueS: { calls: age(row.calls_oldest), notifications: age(row.notifications_oldest) },
      callsInFlight: Number(row.calls_in_flight),
    };
  } catch (error) {
    sources.onCollectError?.(error);
    return { up: false, due: { calls: 0, notifications: 0 }, oldestDueS: { calls: 0, notifications: 0 }, callsInFlight: 0 };
  }
}
