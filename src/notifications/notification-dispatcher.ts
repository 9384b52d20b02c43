/**
 * Delivers speaker notifications: ringing, answered, ended, to every speaker bound to the called
 * number, by signed webhook or MQTT.
 *
 * - A `notifications` row is the durable job, written by the intake in the same transaction as the
 *   call state that causes it. A pass claims due rows (pending -> delivering, one statement) and
 *   only then sends them, so one instance sends each attempt. A timer wakes the dispatcher when a
 *   retry falls due; a poll picks up work left by other instances.
 * - Claimed at birth: a new call's ringing notifications need no claim of their own. The intake
 *   writes them already `delivering` and claimed by this instance (`birth`) and hands them over
 *   with `adopt` once its transaction commits (`abandon` if it failed); what finds no free slot goes
 *   back to the queue. If the process dies between commit and delivery, the rows are recovered as
 *   any claimed row is (below).
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
import { appendEvent, appendEvents, eventLogRow, logSteps, type EventLogEntry } from '../event-log/event-log.js';
import type { GatewayMetrics, NotificationOutcome, Transport } from '../metrics/metrics.js';
import { SingleFlight } from '../jobs/single-flight.js';
import { GroupCommit } from '../storage/group-commit.js';
import type { Db, DbOrTrx, Nullable } from '../storage/database.js';
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

/** A delivery: the row claimed, the callee (for the log) and what the device's row says now. */
export interface Job {
  row: NotificationRow;
  msisdn: string | null;
  device: { endpoint: string | null; signing_secret: string | null; enabled: boolean; endpoint_gone_at: Date | null } | undefined;
}

/** New notifications being written by the intake, claimed at birth by `claimedBy` (see `birth`). */
export interface Birth {
  claimedBy: string | null;
  open: boolean;
}

/** An outcome recorded: its log row (logged once committed) and what the metrics count. */
/** What a claim reads besides the row. */
interface ClaimedExtras {
  more_due: boolean;
  device_found: string | null;
  device_endpoint: string | null;
  device_secret: string | null;
  device_enabled: boolean | null;
  device_gone_at: Date | null;
  callee: string | null;
}

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
  #wakeTime: number | undefined;
  #cancelWake: (() => void) | undefined;
  /** Deliveries claimed and not yet recorded, by notification id. */
  readonly #inFlight = new Set<string>();
  /** Attempts in progress (the slots taken): an outcome being recorded holds no slot. */
  #sending = 0;
  /** Whether the last claim left due rows behind: then a freed slot or a settled step calls for another pass. */
  #backlog = true;
  /** Rows claimed at birth whose transaction has not ended yet (they are in #inFlight already). */
  #births = 0;
  /** Slots a claim in progress may fill: adopted births leave them alone. */
  #claimingSlots = 0;
  /** While orphaned rows are being put back, nothing is claimed at birth (see #recoverOrphans). */
  #recovering = false;
  /** The next pass also computes the wake time (after a start, a poll or an outside kick). */
  #lookAhead = true;
  /** When the next pass should look for expired rows (ms since the epoch). */
  #expiryDueAt = 0;
  /** Attempts in progress per endpoint host: one vendor's slow cloud cannot take every slot. */
  readonly #sendingToHost = new Map<string, number>();
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
        const lookAhead = this.#lookAhead;
        this.#lookAhead = false;
        const passedAt = await this.#pass();
        // A kick that arrives while the wake time is being computed runs one more pass instead.
        // The wake time is read from the table after a start, a poll or an outside kick: the rows
        // this instance writes itself tell it their times (a retry's, an expiry) as it writes them.
        if (lookAhead && !this.#flight.requestedAgain) await this.#scheduleWake(passedAt);
        else if (lookAhead) this.#lookAhead = true;
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

  /** Delivery attempts in progress now: the slots taken (tests). */
  get inFlight(): number {
    return this.#sending;
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
    this.#wakeTime = undefined;
    await this.settle();
  }

  /** Looks for due notifications now (coalesced: one pass at a time, one more if asked meanwhile). */
  kick(): void {
    this.#lookAhead = true;
    if (this.#running) this.#flight.request();
  }

  /** Resolves when nothing is being claimed, delivered or recorded (tests wait on this). */
  async settle(): Promise<void> {
    await this.#flight.settle();
  }

  /**
   * Claim at birth: the instance id new notifications are to be written claimed by (`delivering`,
   * `claimed_by`, `attempts` 1), or null (write them `pending`) when this dispatcher is not taking
   * work. The caller inserts them, then calls `adopt` with the rows inserted once its transaction
   * commits, or `abandon` if it failed; until then this instance's own rows are not recovered.
   */
  birth(): Birth {
    if (!this.#running || this.#recovering) return { claimedBy: null, open: false };
    this.#births++;
    return { claimedBy: this.deps.instanceId, open: true };
  }

  /**
   * Starts the deliveries of rows claimed at birth, now committed, as far as free slots and each
   * host's share allow; the rest go back to the queue (one UPDATE), as do all of them if the
   * dispatcher stopped meanwhile. Rows written pending are claimed by the next pass.
   */
  adopt(birth: Birth, inserted: readonly Job[]): void {
    this.#endBirth(birth);
    const back: string[] = [];
    let pending = false;
    for (const job of inserted) {
      if (job.row.status !== 'delivering' || job.row.claimed_by !== this.deps.instanceId) {
        if (job.row.status === 'pending') pending = true;
        this.#expiryDueAt = Math.min(this.#expiryDueAt, job.row.expires_at.getTime());
        continue;
      }
      if (!this.#take(job.row.id, hostOf(job.row.endpoint), { beside: 'claim' })) {
        back.push(job.row.id);
        continue;
      }
      this.#track(this.#run(job));
    }
    if (back.length > 0) this.#track(this.#putBack(back));
    else if (pending && this.#running) {
      this.#backlog = true;
      this.#flight.request();
    }
  }

  /** The transaction that was to insert a birth's rows failed. */
  abandon(birth: Birth): void {
    this.#endBirth(birth);
  }

  #endBirth(birth: Birth): void {
    if (!birth.open) return;
    birth.open = false;
    this.#births--;
  }

  /** Rows claimed at birth that this instance cannot send now go back to the queue. */
  async #putBack(ids: string[]): Promise<void> {
    try {
      await this.deps.db
        .updateTable('notifications')
        .set({ status: 'pending', claimed_by: null, attempts: 0 })
        .where('id', 'in', ids)
        .where('status', '=', 'delivering')
        .where('claimed_by', '=', this.deps.instanceId)
        .execute();
    } catch (error) {
      // They stay claimed: the next poll's recovery puts them back.
      this.deps.logger.error({ err: error, count: ids.length }, 'could not put notifications back in the queue');
    }
    this.#backlog = true;
    if (this.#running) this.#flight.request();
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
    const slots = this.#options.concurrency - this.#sending;
    if (slots <= 0 || !this.#running) {
      this.#backlog = true; // a finished attempt runs the pass again
      return now;
    }
    const jobs = await this.#claim(slots, now);
    for (const job of jobs) this.#track(this.#run(job));
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

  /**
   * Claims due rows in one statement, with what their delivery needs (the device's endpoint state
   * and secret, the callee), and whether due rows are left (a later step waiting for an earlier
   * one, a saturated host, more rows than slots). Rows past their host's share, as the other
   * deliveries left it meanwhile, go back to the queue untouched.
   */
  async #claim(slots: number, now: Date): Promise<Job[]> {
    const cap = this.#options.perHostConcurrency;
    const saturated = [...this.#sendingToHost].filter(([, count]) => count >= cap).map(([host]) => host);
    this.#claimingSlots = slots;
    let claimed;
    try {
      // A claim that took nothing still answers one row (whether due rows are left), its columns null.
      const result = await sql<Nullable<NotificationRow> & ClaimedExtras>`
        with picked as (
          select n.id from notifications n
           where n.status = 'pending' and n.due_at <= ${now} and n.expires_at > ${now}
             and coalesce(lower(substring(n.endpoint from ${HOST_PATTERN})), '') <> all(${saturated}::text[])
             -- A step waits for the earlier steps of the same call and device to be settled.
             and not exists (
               select 1 from notifications e
                where e.call_id = n.call_id and e.device_id = n.device_id and e.step < n.step and e.status in ('pending', 'delivering'))
           order by n.due_at, n.seq
           limit ${slots}
           for update skip locked
        ),
        claimed as (
          update notifications set status = 'delivering', claimed_by = ${this.deps.instanceId}, attempts = notifications.attempts + 1
            from picked where notifications.id = picked.id
          returning notifications.*
        ),
        backlog as (
          select exists (
            select 1 from notifications w
             where w.status = 'pending' and w.due_at <= ${now} and w.expires_at > ${now} and w.id not in (select id from picked)) as more
        )
        select backlog.more as more_due, claimed.*, d.device_id as device_found, d.endpoint as device_endpoint, d.signing_secret as device_secret,
               d.enabled as device_enabled, d.endpoint_gone_at as device_gone_at, c.callee as callee
          from backlog
          left join claimed on true
          left join devices d on d.device_id = claimed.device_id
          left join incoming_calls c on c.call_id = claimed.call_id`.execute(this.deps.db);
      claimed = result.rows;
    } finally {
      this.#claimingSlots = 0;
    }
    this.#backlog = claimed[0]?.more_due ?? false;
    const jobs: Job[] = [];
    const over: string[] = [];
    const rows = claimed.filter((each): each is NotificationRow & ClaimedExtras => each.id !== null); // none claimed: one row of nulls
    for (const { more_due: _more, device_found, device_endpoint, device_secret, device_enabled, device_gone_at, callee, ...row } of rows.sort((a, b) => a.seq - b.seq)) {
      if (!this.#take(row.id, hostOf(row.endpoint))) {
        over.push(row.id);
        continue;
      }
      const device = device_found === null ? undefined : { endpoint: device_endpoint, signing_secret: device_secret, enabled: device_enabled ?? false, endpoint_gone_at: device_gone_at };
      jobs.push({ row, device, msisdn: callee ?? msisdnFromPayload(row.payload) });
    }
    if (over.length > 0) {
      this.#backlog = true;
      await this.deps.db
        .updateTable('notifications')
        .set((eb) => ({ status: 'pending', claimed_by: null, attempts: eb('attempts', '-', 1) }))
        .where('id', 'in', over)
        .where('status', '=', 'delivering')
        .where('claimed_by', '=', this.deps.instanceId)
        .execute();
    }
    return jobs;
  }

  /** Takes a slot for a delivery, unless none is free or its host has its share (false). */
  #take(id: string, host: string, options: { beside?: 'claim' } = {}): boolean {
    const count = this.#sendingToHost.get(host) ?? 0;
    const busy = this.#sending + (options.beside === 'claim' ? this.#claimingSlots : 0);
    if (!this.#running || busy >= this.#options.concurrency || count >= this.#options.perHostConcurrency) return false;
    this.#inFlight.add(id);
    this.#sending++;
    this.#sendingToHost.set(host, count + 1);
    return true;
  }

  /** An attempt is over: its slot and its host's share are free (the outcome may still be recording). */
  #attempted(host: string): void {
    this.#sending--;
    const left = (this.#sendingToHost.get(host) ?? 1) - 1;
    if (left > 0) this.#sendingToHost.set(host, left);
    else this.#sendingToHost.delete(host);
  }

  /** Another pass, if due rows may be waiting for a slot or for an earlier step. */
  #passIfBacklog(): void {
    if (this.#backlog && this.#running) this.#flight.request();
  }

  async #run(job: Job): Promise<void> {
    let result: DeliveryResult;
    try {
      result = await this.#attempt(job);
    } catch (error) {
      this.deps.logger.error({ err: error, notification_id: job.row.id }, 'notification delivery threw');
      result = { outcome: 'retry', reason: `internal error: ${(error as Error).message}` };
    }
    this.#attempted(hostOf(job.row.endpoint));
    this.#passIfBacklog();
    try {
      await this.#record(job, result);
    } catch (error) {
      // The row stays `delivering`: the next poll puts it back in the queue.
      this.deps.logger.error({ err: error, notification_id: job.row.id }, 'could not record a notification outcome');
    } finally {
      this.#inFlight.delete(job.row.id);
      // A later step of this call and device may be due now.
      this.#passIfBacklog();
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
   * Records deliveries in one statement: the rows delivered (UPDATE ... FROM VALUES) and the log
   * rows of those that were still ours. Delivered is recorded even if a row was meanwhile put back
   * in the queue: that saves a repeat. Undefined for a row that was no longer ours.
   */
  async #recordDelivered(items: { job: Job; statusCode: number | undefined }[]): Promise<(Recorded | undefined)[]> {
    const now = this.deps.clock.now();
    const recorded = items.map(({ job, statusCode }): Recorded => {
      const latency = Math.max(0, now.getTime() - job.row.created_at.getTime());
      const entry: EventLogEntry = {
        type: 'notification.sent',
        status: 'ok',
        ...this.#logBase(job),
        details: { ...this.#logDetails(job), latency_ms: latency, ...(statusCode !== undefined ? { status_code: statusCode } : {}) },
      };
      return { entry, outcome: 'delivered', latencyMs: latency };
    });
    const given = sql.join(
      recorded.map(({ entry, latencyMs }, index) => {
        const log = eventLogRow(entry);
        return sql`(${index}::integer, ${items[index]!.job.row.id}::uuid, ${Math.min(latencyMs!, 2_147_483_647)}::integer, ${log.type}::text, ${log.status}::text, ${log.device_id}::text, ${log.msisdn}::text, ${log.correlation_id}::text, ${log.details}::jsonb)`;
      }),
    );
    const updated = await sql<{ id: string }>`
      with given (ord, id, latency_ms, type, status, device_id, msisdn, correlation_id, details) as (values ${given}),
      updated as (
        update notifications set status = 'delivered', delivered_at = ${now}, latency_ms = given.latency_ms, last_error = null
          from given
         where notifications.id = given.id and notifications.status in ('delivering', 'pending')
        returning notifications.id
      ),
      logged as (
        insert into event_logs (type, status, device_id, msisdn, correlation_id, details)
        select type, status, device_id, msisdn, correlation_id, details from given where id in (select id from updated) order by ord
      )
      select id from updated`.execute(this.deps.db);
    const ours = new Set(updated.rows.map(({ id }) => id));
    return recorded.map((each, index) => (ours.has(items[index]!.job.row.id) ? each : undefined));
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
    // The next attempt's time: its timer is set once the row is committed pending, or a pass it
    // woke could miss the row and nothing would wake for it again before the poll.
    let retryAt: number | undefined;
    // The row written, and the outcome counted, once the transaction commits (none: the row was no longer ours).
    const recorded = await this.deps.db.transaction().execute(async (trx): Promise<Recorded | undefined> => {
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
          retryAt = next.getTime();
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
    if (recorded && retryAt !== undefined) this.#wakeAt(retryAt);
    return recorded;
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
   * While rows claimed at birth may be committing (the list read here would miss them), only this
   * instance's rows older than `staleAfterMs` are put back, and no row is claimed at birth meanwhile.
   */
  async #recoverOrphans(now: Date): Promise<void> {
    const stale = new Date(now.getTime() - this.#options.staleAfterMs);
    const births = this.#births > 0;
    const inFlight = [...this.#inFlight];
    this.#recovering = true;
    let rows;
    try {
      rows = await this.deps.db
        .updateTable('notifications')
        .set({ status: 'pending', claimed_by: null })
        .where('status', '=', 'delivering')
        .where((eb) =>
          eb.or([
            eb.and([
              eb('claimed_by', '<>', this.deps.instanceId),
              eb('claimed_by', 'in', eb.selectFrom('gateway_instances').select('id').where('heartbeat_at', '<', stale)),
            ]),
            eb.and([
              eb('claimed_by', '=', this.deps.instanceId),
              ...(inFlight.length > 0 ? [eb('id', 'not in', inFlight)] : []),
              ...(births ? [eb('created_at', '<', stale)] : []),
            ]),
          ]),
        )
        .returning(['id', 'claimed_by'])
        .execute();
    } finally {
      this.#recovering = false;
    }
    if (rows.length > 0) {
      this.#backlog = true;
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
    this.#wakeAt(Math.min(...candidates));
  }

  /** A pass at `at` (ms since the epoch), unless one is set for earlier. */
  #wakeAt(at: number): void {
    if (!this.#running) return;
    if (this.#wakeTime !== undefined && this.#wakeTime <= at) return; // an earlier timer is set: its pass reschedules
    this.#cancelWake?.();
    this.#wakeTime = at;
    this.#cancelWake = this.deps.clock.setTimer(() => {
      this.#wakeTime = undefined;
      this.#cancelWake = undefined;
      this.kick(); // and the pass sets the timer for whatever falls due after

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
