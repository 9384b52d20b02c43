/**
 * Delivers speaker notifications: ringing, answered, ended, to every speaker bound to the called
 * number, by signed webhook or MQTT.
 *
 * - A `notifications` row is the durable job, written by the intake in the same transaction as the
 *   call state that causes it. A pass claims due rows (pending -> delivering, committed) and only
 *   then sends them, so one instance sends each attempt. The intake kicks a pass as soon as it
 *   commits; a timer wakes the dispatcher when a retry falls due; a poll picks up work left by
 *   other instances.
 * - Every delivery runs on its own: a slow or dead speaker holds one slot, never the others, and
 *   when a delivery ends the freed slot is filled at once. At most `concurrency` deliveries are in
 *   flight and nothing more is held in memory: the rest waits in the table.
 * - Per call and device, a step waits until the steps before it are settled: `answered` and
 *   `ended` are never sent before that speaker's `ringing` was delivered or given up.
 * - A failed attempt is tried again after an exponential backoff with full jitter, until the
 *   notification expires (`expires_at`: a ringing announcement is worthless once the call is over).
 *   410 Gone marks the device's endpoint gone: nothing more is sent there until it changes.
 * - Rows left `delivering` by this instance in an earlier life, or by an instance whose heartbeat
 *   went stale, are put back to `pending` and sent again (at least once; receivers drop repeats by
 *   `webhook-id`, which is the notification id).
 * - Each outcome is recorded in one transaction with its event-log row; deliveries that end while
 *   earlier ones are recorded are recorded together, by one UPDATE and one INSERT.
 */
import { sql, type Selectable, type Updateable } from 'kysely';
import type { Clock } from '../clock/clock.js';
import { parseEndpoint, redactEndpoint } from '../devices/endpoint.js';
import { appendEvent, appendEvents, logSteps, type EventLogEntry } from '../event-log/event-log.js';
import type { GatewayMetrics, NotificationOutcome, Transport } from '../metrics/metrics.js';
import { SingleFlight } from '../jobs/single-flight.js';
import { GroupCommit } from '../storage/group-commit.js';
import type { Db, DbOrTrx } from '../storage/database.js';
import type { Notifications } from '../storage/schema.generated.js';
import { deliverHttp, type DeliveryResult } from './http-delivery.js';
import type { MqttPublisher } from './mqtt-delivery.js';
import type { OutboundPolicy } from './outbound-policy.js';

export type NotificationRow = Selectable<Notifications>;

export interface NotificationLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface NotificationDispatcherDeps {
  db: Db;
  clock: Clock;
  instanceId: string;
  logger: NotificationLogger;
  policy: OutboundPolicy;
  /** Sends one webhook (injectable for tests). */
  http?: typeof deliverHttp;
  mqtt: MqttPublisher;
  /** Counts outcomes and delivery latency (optional: tests of the dispatcher alone). */
  metrics?: GatewayMetrics | undefined;
}

export interface NotificationDispatcherOptions {
  /** Most deliveries in flight at once (NOTIFICATION_CONCURRENCY). */
  concurrency: number;
  /** Most deliveries in flight at once to one host (scheme, host and port of the endpoint). */
  perHostConcurrency: number;
  /** Timeout of one delivery attempt (NOTIFICATION_TIMEOUT_MS). */
  timeoutMs: number;
  /** How often to look for work of other instances and for orphaned deliveries. */
  pollIntervalMs: number;
  /** Backoff between attempts: a random delay below min(maxMs, baseMs * 2^(attempt-1)). */
  retry: { baseMs: number; maxMs: number };
  /** An instance whose heartbeat (gateway_instances) is older than this is gone. */
  staleAfterMs: number;
  /** Random source of the jitter, in [0, 1). */
  random: () => number;
}

export const notificationDispatcherDefaults: NotificationDispatcherOptions = {
  concurrency: 64,
  perHostConcurrency: 16,
  timeoutMs: 3_000,
  pollIntervalMs: 1_000,
  retry: { baseMs: 250, maxMs: 5_000 },
  staleAfterMs: 20_000,
  random: Math.random,
};

/** The scheme, host and port of an endpoint URL, as SQL's substring() and hostOf() read it. */
const HOST_PATTERN = '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+';
const hostPattern = new RegExp(HOST_PATTERN);

export function hostOf(endpoint: string | null): string {
  return (endpoint && hostPattern.exec(endpoint)?.[0].toLowerCase()) || '';
}

/** Rows expired, or put back, per statement. */
const BATCH = 500;

interface Job {
  row: NotificationRow;
  msisdn: string | null;
  device: { endpoint: string | null; signing_secret: string | null; enabled: boolean; endpoint_gone_at: Date | null } | undefined;
}

/** An outcome recorded: its log row (logged once committed) and what the metrics count. */
interface Recorded {
  entry: EventLogEntry;
  outcome: NotificationOutcome;
  latencyMs?: number;
}

export class NotificationDispatcher {
  readonly #options: NotificationDispatcherOptions;
  readonly #http: typeof deliverHttp;
  #running = false;
  #recoverDue = false;
  #cancelPoll: (() => void) | undefined;
  #wakeAt: number | undefined;
  #cancelWake: (() => void) | undefined;
  /** Deliveries claimed and not yet recorded, by notification id. */
  readonly #inFlight = new Set<string>();
  /** When the next pass should look for expired rows (ms since the epoch). */
  #expiryDueAt = 0;
  /** Deliveries in flight per endpoint host: one vendor's slow cloud cannot take every slot. */
  readonly #inFlightByHost = new Map<string, number>();
  readonly #flight: SingleFlight;
  /** Deliveries ending while earlier ones are recorded are recorded together (one transaction). */
  readonly #delivered: GroupCommit<{ job: Job; statusCode: number | undefined }, Recorded | undefined>;

  constructor(
    private readonly deps: NotificationDispatcherDeps,
    options: Partial<NotificationDispatcherOptions> = {},
  ) {
    this.#options = { ...notificationDispatcherDefaults, ...options, retry: { ...notificationDispatcherDefaults.retry, ...options.retry } };
    if (!Number.isInteger(this.#options.concurrency) || this.#options.concurrency < 1) throw new Error('concurrency must be a positive integer');
    this.#http = deps.http ?? deliverHttp;
    this.#flight = new SingleFlight(
      async () => {
        if (!this.#running) return;
        const passedAt = await this.#pass();
        // A kick that arrives while the wake time is being computed runs one more pass instead.
        if (!this.#flight.requestedAgain) await this.#scheduleWake(passedAt);
      },
      (error) => this.deps.logger.error({ err: error }, 'notification pass failed; retrying at the next poll'),
    );
    this.#delivered = new GroupCommit({
      maxBatch: 100,
      maxRunning: 1,
      keys: () => [],
      write: async (items) => (await this.#recordDelivered(items)).map((value) => ({ value })),
    });
  }

  /** Deliveries in flight now (tests, metrics). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    // Whatever this instance was delivering when it last stopped or died is sent again.
    const recovered = await this.#requeueEarlierRun();
    if (recovered > 0) this.deps.logger.warn({ count: recovered }, 'notifications left in flight by an earlier run put back in the queue');
    this.#schedulePoll();
    this.kick();
  }

  /** Stops claiming; waits for the deliveries in flight to be recorded. Pending rows wait for the next start. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#cancelPoll?.();
    this.#cancelPoll = undefined;
    this.#cancelWake?.();
    this.#cancelWake = undefined;
    this.#wakeAt = undefined;
    await this.settle();
  }

  /** Looks for due notifications now (coalesced: one pass at a time, one more if asked meanwhile). */
  kick(): void {
    if (this.#running) this.#flight.request();
  }

  /** Resolves when nothing is being claimed, delivered or recorded (tests wait on this). */
  async settle(): Promise<void> {
    await this.#flight.settle();
  }

  /** One pass; returns the time it judged due rows by. */
  async #pass(): Promise<Date> {
    const now = this.deps.clock.now();
    if (this.#recoverDue) {
      this.#recoverDue = false;
      await this.#recoverOrphans(now);
    }
    // Not in every pass (a pass follows every delivery): when a pending row may have expired, and
    // once per poll interval for rows whose expiry nobody noted. A claim never takes an expired row.
    if (now.getTime() >= this.#expiryDueAt) {
      await this.#expireDue(now);
      this.#expiryDueAt = now.getTime() + this.#options.pollIntervalMs;
    }
    const slots = this.#options.concurrency - this.#inFlight.size;
    if (slots <= 0 || !this.#running) return now; // a finishing delivery kicks again
    const jobs = await this.#claim(slots, now);
    for (const job of jobs) {
      this.#inFlight.add(job.row.id);
      const host = hostOf(job.row.endpoint);
      this.#inFlightByHost.set(host, (this.#inFlightByHost.get(host) ?? 0) + 1);
      this.#track(this.#run(job));
    }
    return now;
  }

  /** pending rows whose time is up become expired. */
  async #expireDue(now: Date): Promise<void> {
    for (;;) {
      const expired = await this.deps.db.transaction().execute(async (trx) => {
        const rows = await trx
          .updateTable('notifications')
          .set({ status: 'expired', claimed_by: null })
          .where('id', 'in', (eb) =>
            eb
              .selectFrom('notifications')
              .select('id')
              .where('status', '=', 'pending')
              .where('expires_at', '<=', now)
              .orderBy('expires_at')
              .limit(BATCH)
              .forUpdate()
              .skipLocked(),
          )
          .returningAll()
          .execute();
        if (rows.length === 0) return { count: 0, rows, logged: [] };
        const callees = await this.#callees(trx, rows);
        const logged = rows.map((row) => this.#expiredEntry(row, callees.get(row.call_id) ?? null, row.last_error));
        await appendEvents(trx, logged);
        return { count: rows.length, rows, logged };
      });
      logSteps(this.deps.logger, expired.logged);
      for (const row of expired.rows) this.deps.metrics?.notification(transportOf(row.endpoint), 'expired');
      if (expired.count < BATCH) return;
    }
  }

  async #claim(slots: number, now: Date): Promise<Job[]> {
    const cap = this.#options.perHostConcurrency;
    const saturated = [...this.#inFlightByHost].filter(([, count]) => count >= cap).map(([host]) => host);
    return this.deps.db.transaction().execute(async (trx) => {
      const claimed = await trx
        .updateTable('notifications')
        .set((eb) => ({ status: 'delivering', claimed_by: this.deps.instanceId, attempts: eb('attempts', '+', 1) }))
        .where('id', 'in', (eb) =>
          eb
            .selectFrom('notifications as n')
            .select('n.id')
            .where('n.status', '=', 'pending')
            .where('n.due_at', '<=', now)
            .where('n.expires_at', '>', now)
            .$if(saturated.length > 0, (query) => query.where(sql<string>`coalesce(lower(substring(n.endpoint from ${HOST_PATTERN})), '')`, 'not in', saturated))
            // A step waits for the earlier steps of the same call and device to be settled.
            .where((w) =>
              w.not(
                w.exists(
                  w
                    .selectFrom('notifications as e')
                    .select(sql<number>`1`.as('one'))
                    .whereRef('e.call_id', '=', 'n.call_id')
                    .whereRef('e.device_id', '=', 'n.device_id')
                    .whereRef('e.step', '<', 'n.step')
                    .where('e.status', 'in', ['pending', 'delivering']),
                ),
              ),
            )
            .orderBy('n.due_at')
            .orderBy('n.seq')
            .limit(slots)
            .forUpdate()
            .skipLocked(),
        )
        .returningAll()
        .execute();
      // Rows past their host's share in this batch go back to the queue, untouched.
      const taken = new Map<string, number>();
      const rows: NotificationRow[] = [];
      const over: string[] = [];
      for (const row of claimed.sort((a, b) => a.seq - b.seq)) {
        const host = hostOf(row.endpoint);
        const count = (this.#inFlightByHost.get(host) ?? 0) + (taken.get(host) ?? 0);
        if (count >= cap) {
          over.push(row.id);
          continue;
        }
        taken.set(host, (taken.get(host) ?? 0) + 1);
        rows.push(row);
      }
      if (over.length > 0) {
        await trx
          .updateTable('notifications')
          .set((eb) => ({ status: 'pending', claimed_by: null, attempts: eb('attempts', '-', 1) }))
          .where('id', 'in', over)
          .execute();
      }
      if (rows.length === 0) return [];
      const devices = await trx
        .selectFrom('devices')
        .select(['device_id', 'endpoint', 'signing_secret', 'enabled', 'endpoint_gone_at'])
        .where('device_id', 'in', [...new Set(rows.map((row) => row.device_id))])
        .execute();
      const byDevice = new Map(devices.map((device) => [device.device_id, device]));
      const callees = await this.#callees(trx, rows);
      return rows.map((row) => ({ row, device: byDevice.get(row.device_id), msisdn: callees.get(row.call_id) ?? msisdnFromPayload(row.payload) }));
    });
  }

  async #run(job: Job): Promise<void> {
    let result: DeliveryResult;
    try {
      result = await this.#attempt(job);
    } catch (error) {
      this.deps.logger.error({ err: error, notification_id: job.row.id }, 'notification delivery threw');
      result = { outcome: 'retry', reason: `internal error: ${(error as Error).message}` };
    }
    try {
      await this.#record(job, result);
    } catch (error) {
      // The row stays `delivering`: the next poll puts it back in the queue.
      this.deps.logger.error({ err: error, notification_id: job.row.id }, 'could not record a notification outcome');
    } finally {
      this.#inFlight.delete(job.row.id);
      const host = hostOf(job.row.endpoint);
      const left = (this.#inFlightByHost.get(host) ?? 1) - 1;
      if (left > 0) this.#inFlightByHost.set(host, left);
      else this.#inFlightByHost.delete(host);
      this.kick();
    }
  }

  async #attempt({ row, device }: Job): Promise<DeliveryResult> {
    if (!device) return { outcome: 'failed', reason: 'the device no longer exists' };
    if (!device.enabled) return { outcome: 'failed', reason: 'the device is disabled' };
    if (device.endpoint_gone_at && device.endpoint === row.endpoint) {
      return { outcome: 'gone', reason: 'the endpoint answered 410 Gone before; change it to resume' };
    }
    const parsed = parseEndpoint(row.endpoint);
    if (!parsed.ok) return { outcome: 'failed', reason: `bad endpoint: ${parsed.reason}` };
    if (parsed.endpoint.transport === 'mqtt') {
      return this.deps.mqtt.publish({ url: row.endpoint, payload: row.payload, timeoutMs: this.#options.timeoutMs });
    }
    if (!device.signing_secret) return { outcome: 'failed', reason: 'the device has no signing secret' };
    return this.#http({
      url: parsed.endpoint.url,
      secret: device.signing_secret,
      messageId: row.id,
      payload: row.payload,
      timeoutMs: this.#options.timeoutMs,
      policy: this.deps.policy,
      now: this.deps.clock.now(),
    });
  }

  async #record(job: Job, result: DeliveryResult): Promise<void> {
    const recorded = result.outcome === 'delivered' ? await this.#delivered.submit({ job, statusCode: result.statusCode }) : await this.#recordFailure(job, result);
    if (!recorded) return;
    // One line per outcome, with the call's correlation id (failures as warnings), and the counters.
    logSteps(this.deps.logger, [recorded.entry]);
    this.deps.metrics?.notification(transportOf(job.row.endpoint), recorded.outcome, recorded.latencyMs);
  }

  /**
   * Records deliveries in one transaction: one UPDATE ... FROM VALUES and one INSERT of their log
   * rows. Delivered is recorded even if a row was meanwhile put back in the queue: that saves a
   * repeat. Undefined for a row that was no longer ours.
   */
  async #recordDelivered(items: { job: Job; statusCode: number | undefined }[]): Promise<(Recorded | undefined)[]> {
    const now = this.deps.clock.now();
    const latencies = items.map(({ job }) => Math.max(0, now.getTime() - job.row.created_at.getTime()));
    return this.deps.db.transaction().execute(async (trx) => {
      const given = sql.join(items.map(({ job }, index) => sql`(${job.row.id}::uuid, ${Math.min(latencies[index]!, 2_147_483_647)}::integer)`));
      const updated = await sql<{ id: string }>`
        update notifications set status = 'delivered', delivered_at = ${now}, latency_ms = given.latency_ms, last_error = null
          from (values ${given}) as given (id, latency_ms)
         where notifications.id = given.id and notifications.status in ('delivering', 'pending')
         returning notifications.id`.execute(trx);
      const ours = new Set(updated.rows.map(({ id }) => id));
      const recorded = items.map(({ job, statusCode }, index): Recorded | undefined => {
        if (!ours.has(job.row.id)) return undefined;
        const latency = latencies[index]!;
        const entry: EventLogEntry = {
          type: 'notification.sent',
          status: 'ok',
          ...this.#logBase(job),
          details: { ...this.#logDetails(job), latency_ms: latency, ...(statusCode !== undefined ? { status_code: statusCode } : {}) },
        };
        return { entry, outcome: 'delivered', latencyMs: latency };
      });
      await appendEvents(trx, recorded.flatMap((each) => (each ? [each.entry] : [])));
      return recorded;
    });
  }

  #logBase({ row, msisdn }: Job): Pick<EventLogEntry, 'deviceId' | 'msisdn' | 'correlationId'> {
    return { deviceId: row.device_id, msisdn, correlationId: row.correlation_id };
  }

  #logDetails({ row }: Job): Record<string, unknown> {
    return { notification_id: row.id, call_id: row.call_id, type: row.type, attempt: row.attempts, transport: transportOf(row.endpoint), endpoint: redactEndpoint(row.endpoint) };
  }

  /** Records a failed attempt (to retry, or given up) in one transaction with its log row. */
  async #recordFailure(job: Job, result: Exclude<DeliveryResult, { outcome: 'delivered' }>): Promise<Recorded | undefined> {
    const { row, msisdn } = job;
    const now = this.deps.clock.now();
    const attempt = row.attempts;
    const base = this.#logBase(job);
    const details = this.#logDetails(job);
    // The row written, and the outcome counted, once the transaction commits (none: the row was no longer ours).
    return this.deps.db.transaction().execute(async (trx): Promise<Recorded | undefined> => {
      const write = async (entry: EventLogEntry, outcome: NotificationOutcome): Promise<Recorded> => {
        await appendEvent(trx, entry);
        return { entry, outcome };
      };
      switch (result.outcome) {
        case 'retry': {
          const cap = Math.min(this.#options.retry.maxMs, this.#options.retry.baseMs * 2 ** Math.max(0, attempt - 1));
          const delay = Math.max(1, Math.round(this.#options.random() * cap));
          const next = new Date(now.getTime() + delay);
          if (next.getTime() >= row.expires_at.getTime()) {
            if (!(await this.#releaseClaim(trx, row.id, { status: 'expired', claimed_by: null, last_error: result.reason }))) return undefined;
            return write(this.#expiredEntry(row, msisdn, result.reason), 'expired');
          }
          if (!(await this.#releaseClaim(trx, row.id, { status: 'pending', claimed_by: null, due_at: next, last_error: result.reason }))) return undefined;
          this.#expiryDueAt = Math.min(this.#expiryDueAt, row.expires_at.getTime());
          return write(
            {
              type: 'notification.failed',
              status: 'failed',
              ...base,
              details: { ...details, reason: result.reason, will_retry: true, next_attempt_at: next.toISOString() },
            },
            'retry',
          );
        }
        case 'failed':
        case 'gone': {
          const gone = result.outcome === 'gone';
          if (!(await this.#releaseClaim(trx, row.id, { status: gone ? 'gone' : 'failed', last_error: result.reason }))) return undefined;
          if (gone) {
            await trx
              .updateTable('devices')
              .set({ endpoint_gone_at: now })
              .where('device_id', '=', row.device_id)
              .where('endpoint', '=', row.endpoint)
              .where('endpoint_gone_at', 'is', null)
              .execute();
          }
          return write(
            {
              type: 'notification.failed',
              status: 'failed',
              ...base,
              details: gone ? { ...details, reason: 'gone', detail: result.reason, will_retry: false } : { ...details, reason: result.reason, will_retry: false },
            },
            gone ? 'gone' : 'failed',
          );
        }
      }
    });
  }

  /** Records the outcome of a row this instance still holds; false when it no longer does (recovered elsewhere). */
  async #releaseClaim(trx: DbOrTrx, id: string, changes: Updateable<Notifications>): Promise<boolean> {
    const updated = await trx
      .updateTable('notifications')
      .set(changes)
      .where('id', '=', id)
      .where('status', '=', 'delivering')
      .where('claimed_by', '=', this.deps.instanceId)
      .returning('id')
      .execute();
    return updated.length > 0;
  }

  #expiredEntry(row: NotificationRow, msisdn: string | null, lastError: string | null): EventLogEntry {
    return {
      type: 'notification.expired',
      status: 'failed',
      deviceId: row.device_id,
      msisdn: msisdn ?? msisdnFromPayload(row.payload),
      correlationId: row.correlation_id,
      details: {
        notification_id: row.id,
        call_id: row.call_id,
        type: row.type,
        attempts: row.attempts,
        expires_at: row.expires_at.toISOString(),
        ...(lastError ? { last_error: lastError } : {}),
      },
    };
  }

  async #callees(trx: DbOrTrx, rows: NotificationRow[]): Promise<Map<string, string>> {
    const calls = await trx
      .selectFrom('incoming_calls')
      .select(['call_id', 'callee'])
      .where('call_id', 'in', [...new Set(rows.map((row) => row.call_id))])
      .execute();
    return new Map(calls.map((call) => [call.call_id, call.callee]));
  }

  /** Puts back to `pending` the rows this instance left `delivering` in an earlier run. */
  async #requeueEarlierRun(): Promise<number> {
    const rows = await this.deps.db
      .updateTable('notifications')
      .set({ status: 'pending', claimed_by: null })
      .where('status', '=', 'delivering')
      .where('claimed_by', '=', this.deps.instanceId)
      .returning('id')
      .execute();
    return rows.length;
  }

  /**
   * Puts back to `pending` the rows nobody delivers any more: claimed by an instance whose
   * heartbeat is stale, or by this one but not in flight here (their outcome could not be recorded).
   */
  async #recoverOrphans(now: Date): Promise<void> {
    const stale = new Date(now.getTime() - this.#options.staleAfterMs);
    const inFlight = [...this.#inFlight];
    const rows = await this.deps.db
      .updateTable('notifications')
      .set({ status: 'pending', claimed_by: null })
      .where('status', '=', 'delivering')
      .where((eb) =>
        eb.or([
          eb.and([
            eb('claimed_by', '<>', this.deps.instanceId),
            eb('claimed_by', 'in', eb.selectFrom('gateway_instances').select('id').where('heartbeat_at', '<', stale)),
          ]),
          eb.and([eb('claimed_by', '=', this.deps.instanceId), ...(inFlight.length > 0 ? [eb('id', 'not in', inFlight)] : [])]),
        ]),
      )
      .returning(['id', 'claimed_by'])
      .execute();
    if (rows.length > 0) {
      this.deps.logger.warn({ count: rows.length, from: [...new Set(rows.map((row) => row.claimed_by))] }, 'orphaned notifications put back in the queue');
    }
  }

  /**
   * One timer for the next retry falling due or the next pending row expiring, after `passedAt`
   * (the time the pass judged rows by): a row that fell due while the pass ran gets a timer of 0.
   */
  async #scheduleWake(passedAt: Date): Promise<void> {
    if (!this.#running) return;
    const now = passedAt;
    const result = await sql<{ due: Date | null; expires: Date | null }>`
      select min(due_at) filter (where due_at > ${now}) as due, min(expires_at) filter (where expires_at > ${now}) as expires
      from notifications where status = 'pending'`.execute(this.deps.db);
    const row = result.rows[0];
    const candidates = [row?.due, row?.expires].filter((value): value is Date => value instanceof Date || typeof value === 'string').map((value) => new Date(value).getTime());
    if (candidates.length === 0) return;
    if (row?.expires) this.#expiryDueAt = Math.min(this.#expiryDueAt, new Date(row.expires).getTime());
    const at = Math.min(...candidates);
    if (this.#wakeAt !== undefined && this.#wakeAt <= at) return; // an earlier timer is set: its pass reschedules
    this.#cancelWake?.();
    this.#wakeAt = at;
    this.#cancelWake = this.deps.clock.setTimer(() => {
      this.#wakeAt = undefined;
      this.#cancelWake = undefined;
      this.kick();
    }, at - this.deps.clock.now().getTime());
  }

  #schedulePoll(): void {
    this.#cancelPoll = this.deps.clock.setTimer(() => {
      if (!this.#running) return;
      this.#recoverDue = true;
      this.kick();
      this.#schedulePoll();
    }, this.#options.pollIntervalMs);
  }

  #track<T>(promise: Promise<T>): void {
    this.#flight.track(promise);
  }
}

function transportOf(endpoint: string): Transport {
  return endpoint.startsWith('mqtt') ? 'mqtt' : 'http';
}

function msisdnFromPayload(payload: Record<string, unknown>): string | null {
  const call = payload.call as Record<string, unknown> | undefined;
  for (const value of [payload.msisdn, payload.callee, call?.callee, call?.msisdn]) {
    if (typeof value === 'string' && value) return value;
  }
  return null;
}
