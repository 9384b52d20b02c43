/**
 * Places the calls the escalation queues, and keeps watch over them.
 *
 * - A queued call row is the durable job. A pass claims due rows (queued -> dialing, committed
 *   with its `call.dialing` log row) and only then hands them to the switch, so a call is dialed
 *   by exactly one instance, at most once. The pass runs at once when work is queued here (no
 *   polling delay), when a retry falls due (a timer), and every poll interval (work queued by
 *   another instance, or left by a crash).
 * - An alarm's first call skips the queue while this instance can dial (`dialingInstance`): the
 *   intake writes it already claimed, in the event's transaction, and it is handed to the switch
 *   as that commits (`afterCommit`), one transaction sooner.
 * - Progress from the switch is recorded in arrival order, in batches: the reports that arrive
 *   while one batch is written form the next (one transaction each).
 * - Calls in flight whose watcher is gone (this instance in an earlier life, an instance whose
 *   heartbeat stopped, a dropped switch connection, a passed deadline) are reconciled: if the
 *   switch still has the channel, it is adopted and watched; if not, its outcome is unknowable
 *   and the same attempt is made again under a new call id. Nothing is re-dialed before the
 *   switch has been asked.
 */
import type { Clock } from '../clock/clock.js';
import { SingleFlight } from '../jobs/single-flight.js';
import { appendEvents, logSteps } from '../event-log/event-log.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import type { Db } from '../storage/database.js';
import { isDatabaseUnavailable, isTransientConflict } from '../storage/errors.js';
import { CallNotPlacedError, CallOutcomeUnknownError, type CallProgress, type CallRequest, type Telephony } from '../telephony/telephony.js';
import type { CallAction } from '../rules/rule-actions.js';
import { CALL_DEADLINE_MARGIN_S, dialingEntry, type AlarmEscalation, type CallToDial, type EscalationEffects } from './alarm-escalation.js';
import * as repository from './alarms-repository.js';
import type { CallRow } from './alarms-repository.js';

export interface DispatcherLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface DispatcherOptions {
  /** Calls claimed per pass. */
  batchSize: number;
  /** How often to look for work queued elsewhere and for orphaned calls. */
  pollIntervalMs: number;
  heartbeatIntervalMs: number;
  /** An instance whose heartbeat is older than this is gone; its calls in flight are reconciled. */
  staleAfterMs: number;
  /** Delay before trying again a call the switch could not take (not connected). */
  notPlacedRetryMs: number;
}

/** Most reports from the switch recorded in one transaction. */
const MAX_PROGRESS_BATCH = 100;

const defaults: DispatcherOptions = {
  batchSize: 50,
  pollIntervalMs: 1_000,
  heartbeatIntervalMs: 5_000,
  staleAfterMs: 20_000,
  notPlacedRetryMs: 2_000,
};

export class CallDispatcher {
  readonly #options: DispatcherOptions;
  readonly #startedAt: Date;
  #running = false;
  /** This instance's row is in gateway_instances (the first heartbeat is written). */
  #registered = false;
  #cancelTimers: (() => void)[] = [];
  #wakeAt: number | undefined;
  /** When the earliest call left queued falls due, as the last claim read it. */
  #nextDueAt: Date | undefined;
  #cancelWake: (() => void) | undefined;
  /** Reports from the switch not recorded yet, in arrival order. */
  readonly #progressQueue: CallProgress[] = [];
  /** Calls with reports queued or being recorded, and how many. */
  readonly #unrecorded = new Map<string, number>();
  #recording: Promise<void> | undefined;
  /** Calls adopted in this life, not asked about again at every poll (until their deadline). */
  readonly #adopted = new Set<string>();
  /** Calls being reconciled right now. */
  readonly #reconciling = new Set<string>();
  readonly #flight: SingleFlight;

  constructor(
    private readonly deps: {
      db: Db;
      telephony: Telephony;
      escalation: AlarmEscalation;
      clock: Clock;
      instanceId: string;
      logger: DispatcherLogger;
      metrics: GatewayMetrics;
    },
    options: Partial<DispatcherOptions> = {},
  ) {
    this.#options = { ...defaults, ...options };
    this.#startedAt = deps.clock.now();
    this.#flight = new SingleFlight(
      async () => {
        if (!this.#running) return;
        // With the switch down, the poll and the reconnect bring the next pass; no wake timer.
        const dispatched = await this.#pass();
        if (dispatched && !this.#flight.requestedAgain) this.#scheduleWake();
      },
      (error) => this.deps.logger.error({ err: error }, 'dispatch pass failed; retrying at the next poll'),
    );
  }

  get instanceId(): string {
    return this.deps.instanceId;
  }

  async start(): Promise<void> {
    this.#running = true;
    this.deps.telephony.onProgress((progress) => this.#applyProgress(progress));
    this.deps.telephony.onReconnect(() => {
      this.deps.logger.info({}, 'telephony reconnected: reconciling calls in flight');
      this.#track(this.reconcile({ all: true }).then(() => this.kick()));
    });
    await repository.heartbeat(this.deps.db, this.deps.instanceId, this.deps.clock.now(), this.#startedAt);
    // Only now may calls be claimed for this instance outside a pass: until its row exists, other
    // instances would take its dialing calls for orphans.
    this.#registered = true;
    this.#every(this.#options.heartbeatIntervalMs, () => repository.heartbeat(this.deps.db, this.deps.instanceId, this.deps.clock.now(), this.#startedAt));
    this.#every(this.#options.pollIntervalMs, async () => {
      await this.reconcile({ all: false });
      this.kick();
    });
    // In the background: a restart after a crash may find hundreds of calls to ask the switch
    // about, and the intake must not wait for that. Nothing is re-dialed but by reconciliation.
    this.#track(
      this.reconcile({ all: false })
        .catch((error: unknown) => this.deps.logger.error({ err: error }, 'reconciling calls in flight failed; retrying at the next poll'))
        .then(() => this.kick()),
    );
  }

  /** Stops watching; calls in flight stay in the database and are reconciled by the next start. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const cancel of this.#cancelTimers) cancel();
    this.#cancelTimers = [];
    this.#cancelWake?.();
    await this.settle();
  }

  /**
   * Removes this instance from the live ones (after stop, once every outcome is recorded): the
   * calls it leaves on the switch become orphans that another instance reconciles and adopts at
   * its next poll, instead of after the heartbeat goes stale.
   */
  async retire(): Promise<void> {
    try {
      await repository.retireInstance(this.deps.db, this.deps.instanceId);
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'could not hand over calls in flight; other instances take them when the heartbeat goes stale');
    }
  }

  /**
   * The instance that can place a new call the moment its transaction commits, or undefined when
   * this one cannot (stopped, not yet known to the other instances, or the switch is down): the
   * call is then queued for a pass. See `AlarmEscalation.startAlarms`.
   */
  dialingInstance(): string | undefined {
    return this.#running && this.#registered && this.deps.telephony.status().ok ? this.deps.instanceId : undefined;
  }

  /** Looks for due calls now (coalesced: one pass at a time, one more if asked meanwhile). */
  kick(): void {
    if (this.#running) this.#flight.request();
  }

  /** Resolves when nothing is being claimed, placed or recorded (tests wait on this). */
  async settle(): Promise<void> {
    await this.#flight.settle();
  }

  /** Claims and places every due call; false when the switch is down (the calls wait, queued). */
  async #pass(): Promise<boolean> {
    if (!this.deps.telephony.status().ok) return false;
    for (;;) {
      const claimed = await this.#claim();
      if (claimed.length === 0) return true;
      await Promise.all(claimed.map(({ call, action }) => this.#place(call, action)));
      if (claimed.length < this.#options.batchSize) return true;
    }
  }

  async #claim(): Promise<{ call: CallRow; action: CallAction }[]> {
    const now = this.deps.clock.now();
    const { claimed, nextDueAt } = await repository.claimDueCalls(this.deps.db, {
      instanceId: this.deps.instanceId,
      now,
      limit: this.#options.batchSize,
      deadlineMarginS: CALL_DEADLINE_MARGIN_S,
    });
    this.#nextDueAt = nextDueAt;
    // The process log's lines: the same rows the claim wrote to event_logs.
    logSteps(this.deps.logger, claimed.map(({ call, alarm }) => dialingEntry(alarm, call, this.deps.instanceId)));
    if (claimed.length > 0) this.deps.metrics.callsDialed.inc(claimed.length);
    return claimed.map(({ call, alarm }) => ({ call, action: alarm.action as unknown as CallAction }));
  }

  #requestOf(call: CallToDial['call'], action: CallAction): CallRequest {
    return {
      callId: call.id,
      to: call.to_number,
      callerId: action.caller_id ?? undefined,
      ringTimeoutS: action.ring_timeout_s,
      message: action.message,
      requireAck: action.require_ack,
      correlationId: call.correlation_id,
    };
  }

  async #place(call: CallToDial['call'], action: CallAction): Promise<void> {
    try {
      await this.deps.telephony.placeCall(this.#requestOf(call, action));
    } catch (error) {
      if (error instanceof CallNotPlacedError) {
        // Nobody was dialed: back to the queue, to be placed once the switch takes calls again.
        this.deps.logger.warn({ call_id: call.id, reason: error.message }, 'call not placed; queued again');
        await repository.requeueCall(this.deps.db, call.id, new Date(this.deps.clock.now().getTime() + this.#options.notPlacedRetryMs));
        return;
      }
      if (error instanceof CallOutcomeUnknownError) {
        // The switch may have taken it: ask it before doing anything else with this call.
        this.deps.logger.warn({ call_id: call.id }, 'originate outcome unknown; reconciling before any re-dial');
        this.#after(this.#options.notPlacedRetryMs, () => this.#reconcileCall(call));
        return;
      }
      this.deps.logger.error({ err: error, call_id: call.id }, 'call could not be placed');
      await this.#afterCommit(await this.deps.escalation.finishUnobserved(call.id, 'OUTCOME_UNKNOWN'));
    }
  }

  #applyProgress(progress: CallProgress): void {
    if (progress.kind === 'ended') this.#adopted.delete(progress.callId);
    this.#progressQueue.push(progress);
    this.#unrecorded.set(progress.callId, (this.#unrecorded.get(progress.callId) ?? 0) + 1);
    if (this.#recording) return;
    this.#recording = this.#recordQueued().finally(() => (this.#recording = undefined));
    this.#track(this.#recording);
  }

  /** Records the queued reports, a batch at a time, until none is left. */
  async #recordQueued(): Promise<void> {
    // After this turn's I/O callbacks: the reports that arrived together go in one batch.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#progressQueue.length > 0) {
      const batch = this.#progressQueue.splice(0, MAX_PROGRESS_BATCH);
      const effects = await this.#record(batch);
      for (const progress of batch) {
        const left = (this.#unrecorded.get(progress.callId) ?? 1) - 1;
        if (left > 0) this.#unrecorded.set(progress.callId, left);
        else this.#unrecorded.delete(progress.callId);
      }
      for (const each of effects) this.afterCommit(each);
    }
  }

  /** Resolves once no report of this call waits to be recorded. */
  async #recorded(callId: string): Promise<void> {
    while (this.#unrecorded.has(callId) && this.#recording) await this.#recording;
  }

  /**
   * Records what the switch reported, waiting out a database outage: the report exists nowhere
   * else, and losing it (a call's end, a pressed 1) would leave the call to be re-dialed. The wait
   * ends when the dispatcher stops; the next start then asks the switch. A batch the database
   * refuses for another reason (a deadlock with another instance's batch, one bad report) is
   * recorded again one report at a time, so a bad report costs only itself.
   */
  async #record(batch: CallProgress[], attempt = 1): Promise<EscalationEffects[]> {
    for (let delay = 250; ; delay = Math.min(delay * 2, 5_000)) {
      try {
        return await this.deps.escalation.recordProgressBatch(batch);
      } catch (error) {
        if (isDatabaseUnavailable(error) && this.#running) {
          this.deps.logger.warn({ reports: batch.length, retry_in_ms: delay }, 'database unavailable: call progress kept until it can be recorded');
          await new Promise<void>((resolve) => this.deps.clock.setTimer(resolve, delay));
          continue;
        }
        if (batch.length > 1) {
          const each: EscalationEffects[] = [];
          for (const progress of batch) each.push(...(await this.#record([progress])));
          return each;
        }
        if (isTransientConflict(error) && attempt < 3) return this.#record(batch, attempt + 1);
        const [progress] = batch;
        this.deps.logger.error({ err: error, call_id: progress?.callId, kind: progress?.kind }, 'could not record call progress');
        return [];
      }
    }
  }

  /**
   * Reconciles calls in flight with the switch: orphans (crash, stale instance, deadline) always,
   * and with `all`, every call this instance watches (after a reconnect, events may have been lost).
   */
  async reconcile({ all }: { all: boolean }): Promise<void> {
    const now = this.deps.clock.now();
    const stale = new Date(now.getTime() - this.#options.staleAfterMs);
    const orphans = await repository.orphanedCalls(this.deps.db, this.deps.instanceId, stale, now, this.#startedAt);
    const mine = all
      ? await this.deps.db.selectFrom('calls').selectAll().where('claimed_by', '=', this.deps.instanceId).where('status', 'in', ['dialing', 'ringing', 'answered']).execute()
      : [];
    const calls = [...new Map([...orphans, ...mine].map((call) => [call.id, call])).values()].filter(
      (call) =>
        // Progress of this call still being recorded says more than the switch can now.
        !this.#unrecorded.has(call.id) &&
        // An adopted call is asked about again only after a reconnect or past its deadline.
        (all || !this.#adopted.has(call.id) || (call.deadline_at !== null && call.deadline_at <= now)),
    );
    // A few at a time: the switch answers one command at a time, the database work overlaps.
    let next = 0;
    const worker = async () => {
      while (next < calls.length) await this.#reconcileCall(calls[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(8, calls.length) }, worker));
  }

  async #reconcileCall(call: Pick<CallRow, 'id'>): Promise<void> {
    // One reconciliation per call at a time (the poll, a reconnect and the start may overlap).
    if (this.#reconciling.has(call.id)) return;
    this.#reconciling.add(call.id);
    try {
      await this.#reconcileOne(call);
    } finally {
      this.#reconciling.delete(call.id);
    }
  }

  async #reconcileOne(call: Pick<CallRow, 'id'>): Promise<void> {
    let exists: boolean;
    try {
      exists = await this.deps.telephony.callExists(call.id);
    } catch (error) {
      // The switch cannot be asked now; the next poll (or the reconnect) tries again.
      this.deps.logger.warn({ call_id: call.id, err: error }, 'cannot reconcile call yet: switch unavailable');
      return;
    }
    // The switch may have reported the call's end just before it answered: let that report be
    // recorded first, or a known outcome (a confirmed call) would be judged unknowable.
    await this.#recorded(call.id);
    const now = this.deps.clock.now();
    const current = await repository.findCall(this.deps.db, call.id);
    if (!current || !['dialing', 'ringing', 'answered'].includes(current.status)) return; // ended meanwhile
    if (exists && (!current.deadline_at || current.deadline_at > now)) {
      if (this.#adopted.has(call.id)) return;
      const deadline = current.deadline_at ?? new Date(now.getTime() + CALL_DEADLINE_MARGIN_S * 1000);
      const alarm = await this.deps.db.transaction().execute(async (trx) => {
        await repository.adoptCall(trx, call.id, this.deps.instanceId, deadline);
        const found = await repository.findAlarm(trx, current.alarm_id);
        // Taken over from another instance or an earlier life of this one (not after a mere reconnect).
        const takenOver = current.claimed_by !== this.deps.instanceId || (current.dialing_at !== null && current.dialing_at < this.#startedAt);
        if (found && takenOver) {
          await appendEvents(trx, [
            {
              type: 'call.adopted',
              status: 'info',
              deviceId: found.device_id,
              msisdn: found.msisdn,
              correlationId: found.correlation_id,
              details: { alarm_id: found.id, call_id: call.id, to: current.to_number, from_instance: current.claimed_by, instance: this.deps.instanceId },
            },
          ]);
        }
        return found;
      });
      if (alarm) await this.deps.telephony.adoptCall(this.#requestOf(current, alarm.action as unknown as CallAction));
      this.#adopted.add(call.id);
      this.deps.logger.info({ call_id: call.id, from: current.claimed_by }, 'adopted a call still live on the switch');
      return;
    }
    const reason = exists ? 'DEADLINE_EXCEEDED' : 'OUTCOME_UNKNOWN';
    this.deps.logger.warn({ call_id: call.id, reason }, 'call in flight reconciled');
    await this.#afterCommit(await this.deps.escalation.finishUnobserved(call.id, reason));
  }

  /**
   * After an escalation transaction commits: its steps go to the process log and the metrics, calls
   * of ended alarms are hung up, and new calls looked for.
   */
  afterCommit(effects: EscalationEffects): void {
    this.#report(effects);
    if (effects.dial.length > 0) {
      this.#track(this.#dialClaimed(effects.dial).catch((error: unknown) => this.deps.logger.error({ err: error }, 'placing new calls failed; they are reconciled with the switch at their deadline')));
    }
    if (effects.hangups.length > 0 || effects.queued) this.#track(this.#hangUpAndKick(effects));
  }

  /** Places calls committed as claimed by this instance (`dialingInstance`), as a pass would. */
  async #dialClaimed(calls: readonly CallToDial[]): Promise<void> {
    if (!this.#running) {
      // Stopped between the claim and its commit: back to the queue, for whichever instance runs.
      const now = this.deps.clock.now();
      await Promise.all(calls.map(({ call }) => repository.requeueCall(this.deps.db, call.id, now)));
      return;
    }
    this.deps.metrics.callsDialed.inc(calls.length);
    await Promise.all(calls.map(({ call, action }) => this.#place(call, action)));
  }

  async #afterCommit(effects: EscalationEffects): Promise<void> {
    this.#report(effects);
    await this.#hangUpAndKick(effects);
  }

  #report(effects: EscalationEffects): void {
    logSteps(this.deps.logger, effects.logged);
    this.deps.metrics.escalationSteps(effects.logged);
  }

  async #hangUpAndKick(effects: EscalationEffects): Promise<void> {
    await Promise.all(
      effects.hangups.map((callId) =>
        this.deps.telephony.hangup(callId).catch((error: unknown) => this.deps.logger.warn({ err: error, call_id: callId }, 'hangup failed')),
      ),
    );
    if (effects.queued) this.kick();
  }

  /**
   * Sets one timer for the next queued call's due time (read by the pass's last claim), so a
   * retry starts when it falls due.
   */
  #scheduleWake(): void {
    if (!this.#running) return;
    const next = this.#nextDueAt;
    if (!next) return;
    const at = next.getTime();
    if (this.#wakeAt !== undefined && this.#wakeAt <= at) return;
    this.#cancelWake?.();
    this.#wakeAt = at;
    // A due time already past is a call another instance holds (SKIP LOCKED): look again at the
    // next poll rather than at once, or this would spin.
    const delay = at - this.deps.clock.now().getTime();
    this.#cancelWake = this.deps.clock.setTimer(() => {
      this.#wakeAt = undefined;
      this.#cancelWake = undefined;
      this.kick();
    }, delay > 0 ? delay : this.#options.pollIntervalMs);
  }

  #every(ms: number, work: () => Promise<unknown>): void {
    let cancel = () => {};
    this.#cancelTimers.push(() => cancel());
    const schedule = () => {
      cancel = this.deps.clock.setTimer(() => {
        if (!this.#running) return;
        this.#track(work().catch((error: unknown) => this.deps.logger.error({ err: error }, 'periodic gateway work failed')));
        schedule();
      }, ms);
    };
    schedule();
  }

  #after(ms: number, work: () => Promise<unknown>): void {
    const entry = () => cancel();
    const cancel = this.deps.clock.setTimer(() => {
      this.#cancelTimers = this.#cancelTimers.filter((other) => other !== entry);
      if (!this.#running) return;
      this.#track(work().catch((error: unknown) => this.deps.logger.error({ err: error }, 'delayed gateway work failed')));
    }, ms);
    this.#cancelTimers.push(entry);
  }

  #track<T>(promise: Promise<T>): void {
    this.#flight.track(promise);
  }
}
