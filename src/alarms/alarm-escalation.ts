/**
 * Carries an alarm from its first call to its end: records what the switch says about each call,
 * and on each call's end decides, in the same transaction, the next call (a queued row: the
 * durable job) or the alarm's end. Every step writes its event-log row with the alarm's
 * correlation id.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock/clock.js';
import { appendEvents, transactionWithEventLog, type EventLogEntry } from '../event-log/event-log.js';
import type { Db, DbOrTrx } from '../storage/database.js';
import type { CallProgress } from '../telephony/telephony.js';
import * as repository from './alarms-repository.js';
import type { AlarmEnd, AlarmRow, CallAlarm, CallRow } from './alarms-repository.js';
import type { CallAction } from '../rules/rule-actions.js';
import { finalStatusOf, nextStep, type FinalCallStatus } from './escalation.js';

/** Extra time past the ring timeout for the message, the confirmation and the hangup. */
export const CALL_DEADLINE_MARGIN_S = 180;

export interface EscalationEffects {
  /** Calls to hang up once the transaction has committed (alarm ended while they were in flight). */
  hangups: string[];
  /** Whether new calls were queued (the dispatcher should look for due calls). */
  queued: boolean;
  /** Calls already claimed by this instance (written as dialing): to hand to the switch at once. */
  dial: CallToDial[];
  /** The event-log rows written, in order: logged to the process log and counted once committed. */
  logged: EventLogEntry[];
}

/** Where in the escalation list a call is, and when it falls due. */
interface CallStep {
  position: number;
  attempt: number;
  delayS: number;
  /** The call this one re-dials (its outcome was lost). */
  redialOf: string | null;
}

/** A call committed as dialing, claimed by this instance, with what the switch is told. */
export interface CallToDial {
  call: Pick<CallRow, 'id' | 'to_number' | 'correlation_id'>;
  action: CallAction;
}

/** How a call ended, as reported by the switch or judged by the gateway. */
interface EndOfCall {
  status: FinalCallStatus;
  cause: string;
  sipCode: number | null;
  acknowledged: boolean;
  /** The gateway could not learn the outcome (the call is re-dialed). */
  outcomeUnknown: boolean;
}

type AdvanceReport = CallProgress & { kind: 'ringing' | 'answered' };

export function noEffects(): EscalationEffects {
  return { hangups: [], queued: false, dial: [], logged: [] };
}

/** Writes event-log rows in the caller's transaction and keeps them for the after-commit report. */
export async function record(trx: DbOrTrx, effects: EscalationEffects, ...entries: EventLogEntry[]): Promise<void> {
  await appendEvents(trx, entries);
  effects.logged.push(...entries);
}

export class AlarmEscalation {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  /**
   * Starts alarms (each unless its rule has an active one for its device) with their first calls,
   * in the caller's transaction, by one statement; returns each alarm started with its first
   * call's log rows, for the caller to write in its story's order.
   *
   * `dialingBy`: the instance that places the first calls as soon as this transaction commits (its
   * dispatcher is running and the switch connected). The calls are then written already claimed
   * (dialing, with their deadline and `call.dialing` row) rather than queued, which spares the
   * dispatcher's claim, a second transaction, between the event's commit and the originate: a
   * crash between the two leaves a dialing call of this instance, reconciled like one claimed by
   * the dispatcher.
   */
  async startAlarms(
    trx: DbOrTrx,
    starting: readonly { row: repository.NewAlarmRow; action: CallAction }[],
    dialingBy?: string,
  ): Promise<{ alarm: AlarmRow; logged: EventLogEntry[]; dial?: CallToDial }[]> {
    const now = this.clock.now();
    const first: CallStep = { position: 0, attempt: 1, delayS: 0, redialOf: null };
    const calls = new Map(
      starting.map(({ row, action }) => [row.id, callRow(row.id, row.correlation_id, action, first, now, dialingBy)]),
    );
    const started = await repository.insertAlarmsWithFirstCalls(
      trx,
      starting.map(({ row }) => row),
      [...calls.values()],
    );
    const actions = new Map(starting.map(({ row, action }) => [row.id, action]));
    return started.map((alarm) => {
      const call = calls.get(alarm.id)!;
      const queued = queuedEntry(alarm, call, first);
      if (!dialingBy) return { alarm, logged: [queued] };
      return { alarm, logged: [queued, dialingEntry(alarm, call, dialingBy)], dial: { call, action: actions.get(alarm.id)! } };
    });
  }

  async #insertCalls(trx: DbOrTrx, steps: readonly { alarm: AlarmRow; step: CallStep }[]): Promise<EventLogEntry[]> {
    const now = this.clock.now();
    const rows = steps.map(({ alarm, step }) => callRow(alarm.id, alarm.correlation_id, alarm.action as unknown as CallAction, step, now));
    await repository.insertCalls(trx, rows);
    return rows.map((row, index) => queuedEntry(steps[index]!.alarm, row, steps[index]!.step));
  }

  /**
   * Applies reports from the switch in one transaction, in the order given (a call's reports keep
   * theirs), their event-log rows written by one INSERT. Consecutive ringing and answered reports
   * of different calls are one statement. Returns, per report, what must happen after the commit.
   * One report the database refuses fails them all: the caller retries them one at a time.
   */
  async recordProgressBatch(reports: readonly CallProgress[]): Promise<EscalationEffects[]> {
    // Only ringing and answered, each of another call (the usual batch while calls are being set
    // up): one statement, log rows included, with no transaction around it.
    if (reports.every((each) => each.kind === 'ringing' || each.kind === 'answered') && new Set(reports.map((each) => each.callId)).size === reports.length) {
      const all = reports.map(() => noEffects());
      const advanced = await repository.advanceCalls(this.db, reports.map(({ callId, kind, at }) => ({ id: callId, to: kind, at })), { log: true });
      for (const [index, { callId, kind }] of reports.entries()) {
        const moved = advanced.get(callId);
        if (moved) all[index]!.logged.push(callEntry(moved.alarm, moved.call, `call.${kind}`, 'info', {}));
      }
      return all;
    }
    return transactionWithEventLog(this.db, async (trx) => {
      const all = reports.map(() => noEffects());
      // A run: consecutive reports of one kind of step (moving forward, confirming, ending), each of another call.
      let run: number[] = [];
      let runKind: 'advance' | 'ack' | 'end' | undefined;
      const flush = async () => {
        if (runKind === 'advance') await this.#advance(trx, run.map((index) => reports[index] as AdvanceReport), run.map((index) => all[index]!));
        if (runKind === 'ack') await this.#acknowledgeAll(trx, run.map((index) => reports[index]!.callId), run.map((index) => all[index]!));
        if (runKind === 'end') {
          const ends = run.map((index) => {
            const progress = reports[index] as CallProgress & { kind: 'ended' };
            return { callId: progress.callId, end: { status: finalStatusOf(progress), cause: progress.cause, sipCode: progress.sipCode ?? null, acknowledged: progress.acknowledged, outcomeUnknown: false } };
          });
          await this.#finishAll(trx, ends, run.map((index) => all[index]!));
        }
        run = [];
        runKind = undefined;
      };
      for (const [index, progress] of reports.entries()) {
        const kind = progress.kind === 'ringing' || progress.kind === 'answered' ? 'advance' : progress.kind === 'acknowledged' ? 'ack' : 'end';
        if (kind !== runKind || run.some((other) => reports[other]!.callId === progress.callId)) await flush();
        run.push(index);
        runKind = kind;
      }
      await flush();
      return all;
    });
  }

  /** Ringing and answered reports of different calls: one statement, then their log rows in order. */
  async #advance(trx: DbOrTrx, reports: readonly AdvanceReport[], effects: readonly EscalationEffects[]): Promise<void> {
    const advanced = await repository.advanceCalls(trx, reports.map(({ callId, kind, at }) => ({ id: callId, to: kind, at })));
    for (const [index, { callId, kind }] of reports.entries()) {
      const moved = advanced.get(callId);
      if (moved) await record(trx, effects[index]!, callEntry(moved.alarm, moved.call, `call.${kind}`, 'info', {}));
    }
  }

  /**
   * Confirmations (1 pressed) of different calls: their calls marked in one statement, their
   * alarms read and locked in one more, then each alarm resolved, all in one more statement.
   */
  async #acknowledgeAll(trx: DbOrTrx, callIds: readonly string[], effects: readonly EscalationEffects[]): Promise<void> {
    const marked = await repository.markAcknowledged(trx, callIds);
    const alarms = await repository.findAlarmsForUpdate(trx, [...marked.values()].map((call) => call.alarm_id));
    const run = new Decisions();
    for (const [index, callId] of callIds.entries()) {
      const call = marked.get(callId);
      if (!call) continue;
      const alarm = await this.#alarmOf(trx, run, alarms, call.alarm_id);
      if (!alarm) continue;
      run.log(effects[index]!, callEntry(alarm, call, 'call.acknowledged', 'ok', {}));
      // Confirmed: the alarm is resolved now, not when the callee hangs up.
      if (alarm.status === 'active') run.end(alarm, 'resolved', `confirmed by ${call.to_number}`, effects[index]!, call.id);
    }
    await this.#write(trx, run);
  }

  /**
   * Ends a call the gateway judged itself: its outcome was lost and the switch no longer has it
   * (`outcomeUnknown`), or it ran past its deadline.
   */
  async finishUnobserved(callId: string, reason: 'OUTCOME_UNKNOWN' | 'DEADLINE_EXCEEDED'): Promise<EscalationEffects> {
    const effects = noEffects();
    await this.db.transaction().execute(async (trx) => {
      const call = await trx.selectFrom('calls').select('acknowledged').where('id', '=', callId).forUpdate().executeTakeFirst();
      if (call?.acknowledged) {
        // Confirmed before its hang-up went unseen: the outcome is known, the call completed.
        await this.finish(trx, callId, { status: 'completed', cause: 'HANGUP_UNOBSERVED', sipCode: null, acknowledged: true, outcomeUnknown: false }, effects);
        return;
      }
      await this.finish(trx, callId, { status: 'failed', cause: reason, sipCode: null, acknowledged: false, outcomeUnknown: reason === 'OUTCOME_UNKNOWN' }, effects);
    });
    if (reason === 'DEADLINE_EXCEEDED') effects.hangups.push(callId);
    return effects;
  }

  private async finish(trx: DbOrTrx, callId: string, end: EndOfCall, effects: EscalationEffects): Promise<void> {
    await this.#finishAll(trx, [{ callId, end }], [effects]);
  }

  /**
   * Records the ends of calls (each of another call), in order: their rows in one statement, their
   * alarms read and locked in one more, then for each the decision (the next call, or the alarm's
   * end), written together.
   */
  async #finishAll(trx: DbOrTrx, ends: readonly { callId: string; end: EndOfCall }[], effects: readonly EscalationEffects[]): Promise<void> {
    const now = this.clock.now();
    const finished = await repository.finishCalls(
      trx,
      ends.map(({ callId, end }) => ({ id: callId, status: end.status, cause: end.cause, sipCode: end.sipCode, acknowledged: end.acknowledged, at: now })),
    );
    // One read of each alarm, locked: it serves the log row and the decision.
    const alarms = await repository.findAlarmsForUpdate(trx, [...finished.values()].map((call) => call.alarm_id));
    const run = new Decisions();
    for (const [index, { callId, end }] of ends.entries()) {
      const call = finished.get(callId);
      if (!call) continue; // not ours, or its end was already recorded
      const alarm = await this.#alarmOf(trx, run, alarms, call.alarm_id);
      if (!alarm) continue;
      this.#decide(run, call, alarm, end, effects[index]!);
    }
    await this.#write(trx, run);
  }

  /**
   * The alarm as the run's earlier decisions left it: read with the run's alarms, or, for a second
   * call of an alarm in the same run, read again once the decisions so far are written.
   */
  async #alarmOf(trx: DbOrTrx, run: Decisions, alarms: ReadonlyMap<string, AlarmRow>, alarmId: string): Promise<AlarmRow | undefined> {
    if (!run.seen.has(alarmId)) {
      run.seen.add(alarmId);
      return alarms.get(alarmId);
    }
    await this.#write(trx, run);
    return repository.findAlarm(trx, alarmId, { forUpdate: true });
  }

  #decide(run: Decisions, call: CallRow, alarm: AlarmRow, end: EndOfCall, effects: EscalationEffects): void {
    const type = call.status === 'completed' ? 'call.completed' : call.status === 'canceled' ? 'call.canceled' : 'call.failed';
    run.log(
      effects,
      callEntry(alarm, call, type, call.status === 'completed' ? 'ok' : call.status === 'canceled' ? 'info' : 'failed', {
        status: call.status,
        cause: call.hangup_cause,
        sip_code: call.sip_code,
        acknowledged: call.acknowledged,
        ...(end.outcomeUnknown ? { outcome_unknown: true } : {}),
      }),
    );
    if (alarm.status !== 'active') return;
    const action = alarm.action as unknown as CallAction;
    const step = nextStep(action, { position: call.position, attempt: call.attempt, status: call.status as FinalCallStatus, acknowledged: call.acknowledged, outcomeUnknown: end.outcomeUnknown });
    switch (step.kind) {
      case 'resolved':
        run.end(alarm, 'resolved', `confirmed by ${call.to_number}`, effects, call.id);
        return;
      case 'exhausted':
        run.end(alarm, 'exhausted', 'every number was tried without a confirmation', effects);
        return;
      case 'call':
        run.queue(alarm, { position: step.position, attempt: step.attempt, delayS: step.delayS, redialOf: step.redial ? call.id : null }, effects);
        return;
      case 'none':
        return;
    }
  }

  /** Ends an alarm: pending calls canceled, calls in flight hung up after the commit. False when it was not active. */
  async endAlarm(
    trx: DbOrTrx,
    alarm: AlarmRow,
    status: AlarmEnd['status'],
    reason: string,
    effects: EscalationEffects,
  ): Promise<boolean> {
    const run = new Decisions();
    const ending = run.end(alarm, status, reason, effects);
    await this.#write(trx, run);
    return ending.ended;
  }

  /**
   * Writes a run's decisions: one statement ends its alarms (their calls not dialed yet canceled,
   * those in flight hung up after the commit), one INSERT queues its next calls; then every
   * report's log rows, in order. The run is empty again afterwards.
   */
  async #write(trx: DbOrTrx, run: Decisions): Promise<void> {
    const { ends, calls, rows } = run.take();
    const ended = await repository.endAlarms(
      trx,
      ends.map(({ alarm, status, reason }) => ({ id: alarm.id, status, reason })),
      this.clock.now(),
    );
    for (const ending of ends) {
      const { alarm, status, reason, effects, keepCallId, entries } = ending;
      const result = ended.get(alarm.id);
      if (!result) continue;
      ending.ended = true;
      effects.hangups.push(...result.inFlight.filter((callId) => callId !== keepCallId));
      entries.push(...result.canceled.map((call) => callEntry(alarm, call, 'call.canceled', 'info', { status: 'canceled', reason: `alarm ${status}` })));
      entries.push({
        type: `alarm.${status}`,
        status: status === 'resolved' ? 'ok' : status === 'exhausted' ? 'failed' : 'info',
        deviceId: alarm.device_id,
        msisdn: alarm.msisdn,
        correlationId: alarm.correlation_id,
        details: { alarm_id: alarm.id, rule_id: alarm.rule_id, reason },
      });
    }
    const queued = await this.#insertCalls(trx, calls);
    calls.forEach(({ effects, entries }, index) => {
      entries.push(queued[index]!);
      effects.queued = true;
    });
    // One write for the run's rows (outside transactionWithEventLog too), each kept for its report.
    for (const { effects, entries } of rows) effects.logged.push(...entries);
    await appendEvents(trx, rows.flatMap(({ entries }) => entries));
  }
}

/** An alarm a run ends; `entries` (its calls canceled, its end) are filled when it is written. */
interface Ending {
  alarm: AlarmRow;
  status: AlarmEnd['status'];
  reason: string;
  effects: EscalationEffects;
  /** The call that ended it, not hung up. */
  keepCallId: string | undefined;
  entries: EventLogEntry[];
  ended: boolean;
}

/** A next call a run queues; `entries` (its `call.queued` row) is filled when it is written. */
interface Queuing {
  alarm: AlarmRow;
  step: CallStep;
  effects: EscalationEffects;
  entries: EventLogEntry[];
}

/**
 * What a run of reports decides, kept until it is written together (`AlarmEscalation.#write`):
 * every alarm it ends by one statement and every next call by one INSERT, where each used to take
 * its own. Each report's log rows keep their order: its call's row, then what it decided.
 */
class Decisions {
  #ends: Ending[] = [];
  #calls: Queuing[] = [];
  #rows: { effects: EscalationEffects; entries: EventLogEntry[] }[] = [];
  /** Alarms the run has read: a second call of one reads it again after a write. */
  readonly seen = new Set<string>();

  log(effects: EscalationEffects, ...entries: EventLogEntry[]): void {
    this.#rows.push({ effects, entries });
  }

  end(alarm: AlarmRow, status: AlarmEnd['status'], reason: string, effects: EscalationEffects, keepCallId?: string): Ending {
    const ending: Ending = { alarm, status, reason, effects, keepCallId, entries: [], ended: false };
    this.#ends.push(ending);
    this.#rows.push({ effects, entries: ending.entries });
    return ending;
  }

  queue(alarm: AlarmRow, step: CallStep, effects: EscalationEffects): void {
    const queuing: Queuing = { alarm, step, effects, entries: [] };
    this.#calls.push(queuing);
    this.#rows.push({ effects, entries: queuing.entries });
  }

  /** The decisions so far; the run starts over (what it has seen stays seen). */
  take(): { ends: Ending[]; calls: Queuing[]; rows: { effects: EscalationEffects; entries: EventLogEntry[] }[] } {
    const taken = { ends: this.#ends, calls: this.#calls, rows: this.#rows };
    this.#ends = [];
    this.#calls = [];
    this.#rows = [];
    return taken;
  }
}

/**
 * A new call's row: the number at the step's position of the alarm's escalation list, queued, or
 * (`claimedBy`) already dialing by that instance, with the deadline the dispatcher's claim gives.
 */
function callRow(
  alarmId: string,
  correlationId: string,
  action: CallAction,
  step: CallStep,
  now: Date,
  claimedBy?: string,
): repository.NewCallRow & { id: string; to_number: string; correlation_id: string; position: number; attempt: number; due_at: Date } {
  return {
    id: randomUUID(),
    alarm_id: alarmId,
    position: step.position,
    attempt: step.attempt,
    to_number: action.to[step.position]!,
    status: claimedBy ? 'dialing' : 'queued',
    due_at: new Date(now.getTime() + step.delayS * 1000),
    queued_at: now,
    correlation_id: correlationId,
    redial_of: step.redialOf,
    ...(claimedBy ? { claimed_by: claimedBy, dialing_at: now, deadline_at: new Date(now.getTime() + (action.ring_timeout_s + CALL_DEADLINE_MARGIN_S) * 1000) } : {}),
  };
}

/**
 * A claimed call's `call.dialing` row, as the dispatcher's claim writes it in SQL
 * (`claimDueCalls`): keep the two alike.
 */
export function dialingEntry(alarm: CallAlarm, call: Pick<CallRow, 'id' | 'to_number' | 'position' | 'attempt'>, instanceId: string): EventLogEntry {
  return {
    type: 'call.dialing',
    status: 'info',
    deviceId: alarm.device_id,
    msisdn: alarm.msisdn,
    correlationId: alarm.correlation_id,
    details: { alarm_id: alarm.id, call_id: call.id, to: call.to_number, position: call.position, attempt: call.attempt, instance: instanceId },
  };
}

/** A queued call's `call.queued` row. */
function queuedEntry(alarm: CallAlarm, call: ReturnType<typeof callRow>, step: CallStep): EventLogEntry {
  return {
    type: 'call.queued',
    status: 'info',
    deviceId: alarm.device_id,
    msisdn: alarm.msisdn,
    correlationId: alarm.correlation_id,
    details: {
      alarm_id: alarm.id,
      call_id: call.id,
      to: call.to_number,
      position: call.position,
      attempt: call.attempt,
      due_at: call.due_at.toISOString(),
      ...(step.redialOf ? { redial_of: step.redialOf } : {}),
    },
  };
}

function callEntry(alarm: CallAlarm, call: CallRow, type: string, status: EventLogEntry['status'], extra: Record<string, unknown>): EventLogEntry {
  return {
    type,
    status,
    deviceId: alarm.device_id,
    msisdn: alarm.msisdn,
    correlationId: alarm.correlation_id,
    details: { alarm_id: alarm.id, call_id: call.id, to: call.to_number, position: call.position, attempt: call.attempt, ...extra },
  };
}
