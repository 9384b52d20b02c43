/**
 * Incoming calls to a subscriber's number, from the TAS over REST or heard on FreeSWITCH's Event
 * Socket: each state is recorded, and the notifications it causes for the speakers bound to the
 * number are written in the same transaction (the durable delivery jobs), then delivered at once.
 *
 * States only move forward: ringing -> answered -> ended. A repeated or late earlier state changes
 * nothing. A call first heard as answered or ended was never announced, so nothing is sent for
 * it. When a call is answered or ends, speakers whose ringing notification has not been attempted
 * yet get nothing at all (the ringing is superseded); the others get the new state after it.
 *
 * Reports are written by group commit (src/storage/group-commit.ts): those that arrive together
 * share one transaction and one INSERT of their log rows. A new call's ringing notifications are
 * claimed at birth by the notification dispatcher (written `delivering`, sent once the transaction
 * commits, with no claim of their own); the rest wait in the queue for the dispatcher's next pass.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock/clock.js';
import { appendEvents, logSteps, transactionWithEventLog, type EventLogEntry, type StepLogger, type Trace } from '../event-log/event-log.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { decodeCursor, toPage } from '../http/pagination.js';
import { ApiProblem } from '../http/problems.js';
import { normalizeMsisdn } from '../phone-numbers/msisdn.js';
import type { Db, DbOrTrx } from '../storage/database.js';
import { GroupCommit, type ItemOutcome } from '../storage/group-commit.js';
import * as repository from './incoming-calls-repository.js';
import type { IncomingCallRow, NewRingingCall, NotificationRow } from './incoming-calls-repository.js';
import type { Birth, Job } from '../notifications/notification-dispatcher.js';
import { isoOrNull } from '../http/schemas.js';

export const callStates = ['ringing', 'answered', 'ended'] as const;
export const notificationStatuses = ['pending', 'delivering', 'delivered', 'failed', 'expired', 'gone', 'superseded'] as const;
export type NotificationStatus = (typeof notificationStatuses)[number];
export type CallState = (typeof callStates)[number];
const stepOf: Record<CallState, number> = { ringing: 1, answered: 2, ended: 3 };

export interface IncomingCallReport {
  call_id: string;
  caller: string;
  callee: string;
  state?: CallState | undefined;
  caller_name?: string | undefined;
}

export interface IncomingCallResult {
  call_id: string;
  state: CallState;
  notified_devices: number;
}

export function presentIncomingCall(row: IncomingCallRow) {
  return {
    call_id: row.call_id,
    caller: row.caller,
    caller_name: row.caller_name,
    callee: row.callee,
    state: row.state as CallState,
    source: row.source as 'api' | 'freeswitch',
    correlation_id: row.correlation_id,
    received_at: row.received_at.toISOString(),
    ringing_at: isoOrNull(row.ringing_at),
    answered_at: isoOrNull(row.answered_at),
    ended_at: isoOrNull(row.ended_at),
  };
}

function presentNotification(row: NotificationRow) {
  return {
    id: row.id,
    device_id: row.device_id,
    type: row.type,
    status: row.status as NotificationStatus,
    attempts: row.attempts,
    created_at: row.created_at.toISOString(),
    delivered_at: row.delivered_at?.toISOString() ?? null,
    latency_ms: row.latency_ms,
    last_error: row.last_error,
    expires_at: row.expires_at.toISOString(),
  };
}

/** A notification in short, as the call list shows it. */
function presentDelivery(row: NotificationRow) {
  return { device_id: row.device_id, type: row.type, status: row.status as NotificationStatus, latency_ms: row.latency_ms };
}

/** The outcome, and the correlation id of the call's story. */
export type Reported = IncomingCallResult & { correlationId: string };

interface ReportSubmission {
  input: IncomingCallReport;
  trace: Trace;
  source: 'api' | 'freeswitch';
}

/** What reports wrote that their commit logs, counts and hands to the notification dispatcher. */
interface Written {
  /** Calls first reported ringing, with the devices announcing each. */
  calls: Map<string, { devices: string[]; source: 'api' | 'freeswitch' }>;
  deliveries: Job[];
  /** Log rows written by the ringing calls' statement (the others are logged by their transaction). */
  logged: EventLogEntry[];
}

function mergeWritten(into: Written, from: Written): void {
  for (const [callId, call] of from.calls) into.calls.set(callId, call);
  into.deliveries.push(...from.deliveries);
  into.logged.push(...from.logged);
}

/** What the notification dispatcher offers the intake (NotificationDispatcher). */
export interface NotificationQueue {
  birth(): Birth;
  adopt(birth: Birth, inserted: readonly Job[]): void;
  abandon(birth: Birth): void;
}

export class IncomingCallsService {
  readonly #intake: GroupCommit<ReportSubmission, Reported>;

  constructor(
    private readonly deps: {
      db: Db;
      clock: Clock;
      defaultCountry: string;
      /** How long a notification stays worth delivering. */
      notificationTtlS: number;
      /** Sends the notifications written (the first attempt starts at once). */
      notifications: NotificationQueue;
      logger: StepLogger;
      metrics: GatewayMetrics;
    },
  ) {
    this.#intake = new GroupCommit<ReportSubmission, Reported>({
      maxBatch: 100,
      maxRunning: 2,
      keys: ({ input }) => [`call ${input.call_id}`],
      write: (batch) => this.#write(batch),
      onRetry: (error, size) => deps.logger.warn({ err: error, reports: size }, 'incoming calls: a batch of reports was refused; writing them one at a time'),
    });
  }

  /** Writes event-log rows in the report's transaction; they are logged once it commits. */
  private async record(trx: DbOrTrx, logged: EventLogEntry[], entry: EventLogEntry): Promise<void> {
    await appendEvents(trx, [entry]);
    logged.push(entry);
  }

  msisdnOf(field: string, text: string): string {
    const result = normalizeMsisdn(text, this.deps.defaultCountry);
    if (!result.ok) throw new ApiProblem('validation_failed', `${field}: ${result.reason}`, [{ field, message: result.reason }]);
    return result.e164;
  }

  /** A caller as given: a number when it reads as one (stored E.164), else the text (`anonymous`). */
  private callerOf(text: string): string {
    const result = normalizeMsisdn(text, this.deps.defaultCountry);
    return result.ok ? result.e164 : text.trim();
  }

  /**
   * The outcome, and the correlation id of the call's story (its first report's). Reports that
   * arrive while others are being written are written together, in one transaction (group commit,
   * as the webhook intake): one after the other, as they arrived, reports of one call in separate
   * batches. Each is answered after that commit.
   */
  report(input: IncomingCallReport, trace: Trace, source: 'api' | 'freeswitch' = 'api'): Promise<Reported> {
    return this.#intake.submit({ input, trace, source });
  }

  /**
   * Writes a batch of reports; a report refused (4xx) is refused alone. The calls first reported
   * ringing (the usual case) are written by one statement for the batch, their notifications
   * claimed at birth; the other reports (a later state, a repeat) share one transaction.
   */
  async #write(batch: readonly ReportSubmission[]): Promise<ItemOutcome<Reported>[]> {
    const outcomes: (ItemOutcome<Reported> | undefined)[] = batch.map(() => undefined);
    const fresh: { index: number; call: NewRingingCall }[] = [];
    for (const [index, { input, trace, source }] of batch.entries()) {
      if ((input.state ?? 'ringing') !== 'ringing') continue;
      try {
        fresh.push({ index, call: this.#newRingingCall(input, trace, source) });
      } catch (error) {
        if (!(error instanceof ApiProblem)) throw error;
        outcomes[index] = { error };
      }
    }
    if (fresh.length > 0) {
      const birth = this.deps.notifications.birth();
      let written;
      try {
        written = await this.#announce(this.deps.db, fresh.map(({ call }) => call), birth);
      } catch (error) {
        this.deps.notifications.abandon(birth);
        throw error;
      }
      this.#committed(birth, written);
      for (const { index, call } of fresh) {
        const announced = written.calls.get(call.call_id);
        if (announced) outcomes[index] = { value: { call_id: call.call_id, state: 'ringing', notified_devices: announced.devices.length, correlationId: call.correlation_id } };
      }
    }
    // The rest (a call that exists already, a later state) in one transaction.
    const rest = batch.flatMap((submission, index) => (outcomes[index] ? [] : [{ index, submission }]));
    if (rest.length > 0) {
      const logged: EventLogEntry[] = [];
      const recorded: { state: CallState; source: 'api' | 'freeswitch' }[] = [];
      const birth = this.deps.notifications.birth();
      const written: Written = { calls: new Map(), deliveries: [], logged: [] };
      try {
        await transactionWithEventLog(this.deps.db, async (trx) => {
          for (const { index, submission } of rest) {
            const { input, trace, source } = submission;
            try {
              const one = await this.#writeOne(trx, input, trace, source, logged, birth, written);
              outcomes[index] = { value: { ...one.result, correlationId: one.correlationId } };
              if (one.recorded) recorded.push({ state: one.recorded, source });
            } catch (error) {
              // Refused before it wrote anything (a 4xx): the transaction goes on with the others.
              if (!(error instanceof ApiProblem)) throw error;
              outcomes[index] = { error };
            }
          }
        });
      } catch (error) {
        this.deps.notifications.abandon(birth);
        throw error;
      }
      logSteps(this.deps.logger, logged);
      for (const { state, source } of recorded) this.deps.metrics.incomingCalls.inc({ state, source });
      this.#committed(birth, written);
    }
    return outcomes.map((outcome) => outcome!);
  }

  #newRingingCall(input: IncomingCallReport, trace: Trace, source: 'api' | 'freeswitch'): NewRingingCall {
    return {
      call_id: input.call_id,
      caller: this.callerOf(input.caller),
      caller_name: input.caller_name ?? null,
      callee: this.msisdnOf('body.callee', input.callee),
      source,
      correlation_id: trace.correlationId,
      request_id: trace.requestId ?? null,
    };
  }

  /** Writes calls first reported ringing (one statement) and what their commit will log, count and send. */
  async #announce(db: DbOrTrx, calls: NewRingingCall[], birth: Birth): Promise<Written> {
    const now = this.deps.clock.now();
    const expiresAt = new Date(now.getTime() + this.deps.notificationTtlS * 1000);
    const inserted = await repository.insertRingingCalls(db, calls, { now, expiresAt, claimedBy: birth.claimedBy });
    // The process log's lines: the rows insertRingingCalls wrote to event_logs (keep the two alike).
    const logged: EventLogEntry[] = [];
    for (const call of calls) {
      const announced = inserted.calls.get(call.call_id);
      if (!announced) continue;
      const base = { msisdn: call.callee, correlationId: call.correlation_id, requestId: call.request_id };
      logged.push(
        announced.devices.length === 0
          ? { type: 'incoming_call.no_devices', status: 'info', ...base, details: { call_id: call.call_id, caller: call.caller, source: call.source } }
          : { type: 'incoming_call.received', status: 'ok', ...base, details: { call_id: call.call_id, caller: call.caller, caller_name: call.caller_name, source: call.source, devices: announced.devices } },
      );
    }
    const sources = new Map(calls.map((call) => [call.call_id, call]));
    return {
      calls: new Map([...inserted.calls].map(([callId, announced]) => [callId, { ...announced, source: sources.get(callId)!.source }])),
      deliveries: inserted.notifications.map(({ row, signingSecret }) => ({
        row,
        msisdn: sources.get(row.call_id)!.callee,
        device: { endpoint: row.endpoint, signing_secret: signingSecret, enabled: true, endpoint_gone_at: null },
      })),
      logged,
    };
  }

  /** After a commit: the log lines, the counters, and the notifications handed to the dispatcher. */
  #committed(birth: Birth, written: Written): void {
    logSteps(this.deps.logger, written.logged);
    for (const { source } of written.calls.values()) this.deps.metrics.incomingCalls.inc({ state: 'ringing', source });
    this.deps.notifications.adopt(birth, written.deliveries);
  }

  async #writeOne(
    trx: DbOrTrx,
    input: IncomingCallReport,
    trace: Trace,
    source: 'api' | 'freeswitch',
    logged: EventLogEntry[],
    birth: Birth,
    written: Written,
  ): Promise<{ result: IncomingCallResult; correlationId: string; recorded: CallState | undefined }> {
    const callee = this.msisdnOf('body.callee', input.callee);
    const state = input.state ?? 'ringing';
    const now = this.deps.clock.now();
    if (state === 'ringing') {
      // Existed when the batch's ringing calls were written: unless it was deleted meanwhile, this finds it taken.
      const announced = await this.#announce(trx, [this.#newRingingCall(input, trace, source)], birth);
      mergeWritten(written, announced);
      const call = announced.calls.get(input.call_id);
      if (call) return { result: { call_id: input.call_id, state, notified_devices: call.devices.length }, correlationId: trace.correlationId, recorded: undefined };
    } else {
      // A call first heard answered or ended was never announced: it is recorded, nothing is sent.
      const inserted = await repository.insertIncomingCall(trx, {
        call_id: input.call_id,
        caller: this.callerOf(input.caller),
        caller_name: input.caller_name ?? null,
        callee,
        state,
        source,
        correlation_id: trace.correlationId,
        received_at: now,
        answered_at: state === 'answered' ? now : null,
        ended_at: state === 'ended' ? now : null,
      });
      if (inserted) {
        await this.logState(trx, inserted, state, 0, trace, { first_heard: state }, logged);
        return { result: { call_id: inserted.call_id, state, notified_devices: 0 }, correlationId: trace.correlationId, recorded: state };
      }
    }
    const call = (await repository.findIncomingCall(trx, input.call_id, { forUpdate: true }))!;
    const correlationId = call.correlation_id;
    if (call.callee !== callee) {
      throw new ApiProblem('incoming_call_conflict', `Call ${input.call_id} was reported to ${call.callee}, not ${callee}.`);
    }
    const current = call.state as CallState;
    if (stepOf[state] <= stepOf[current]) {
      // A repeat, or a state that arrives after a later one: nothing changes.
      const existing = await repository.notificationsOfCall(trx, call.call_id);
      const notified = existing.filter((n) => n.type === `incoming_call.${state}`).length;
      return { result: { call_id: call.call_id, state: current, notified_devices: notified }, correlationId, recorded: undefined };
    }
    await repository.setIncomingCallState(trx, call.call_id, state as 'answered' | 'ended', now);
    const queued = await this.followUp(trx, call, state as 'answered' | 'ended', now, trace, logged, written);
    return { result: { call_id: call.call_id, state, notified_devices: queued }, correlationId, recorded: state };
  }

  private async followUp(
    trx: DbOrTrx,
    call: IncomingCallRow,
    state: 'answered' | 'ended',
    now: Date,
    trace: Trace,
    logged: EventLogEntry[],
    written: Written,
  ): Promise<number> {
    const superseded = await repository.supersedePendingRinging(trx, call.call_id);
    const ringing = (await repository.notificationsOfCall(trx, call.call_id)).filter(
      (notification) => notification.type === 'incoming_call.ringing' && (notification.status === 'delivering' || notification.status === 'delivered'),
    );
    // Pending: each waits in the queue for its speaker's ringing to be settled.
    const inserted = await repository.insertNotifications(trx, ringing.map((notification) => this.notification(call, notification.device_id, notification.endpoint, state, now)));
    written.deliveries.push(...inserted.map((row) => ({ row, msisdn: call.callee, device: undefined })));
    const count = inserted.length;
    await this.logState(trx, call, state, count, trace, superseded.length > 0 ? { superseded_ringing: superseded } : {}, logged);
    return count;
  }

  private async logState(
    trx: DbOrTrx,
    call: IncomingCallRow,
    state: CallState,
    notified: number,
    trace: Trace,
    extra: Record<string, unknown>,
    logged: EventLogEntry[],
  ): Promise<void> {
    await this.record(trx, logged, {
      type: `incoming_call.${state === 'ringing' ? 'received' : state}`,
      status: 'ok',
      msisdn: call.callee,
      correlationId: call.correlation_id,
      requestId: trace.requestId,
      details: { call_id: call.call_id, notified_devices: notified, ...extra },
    });
  }

  private notification(call: IncomingCallRow, deviceId: string, endpoint: string, state: 'answered' | 'ended', now: Date) {
    const id = randomUUID();
    const expiresAt = new Date(now.getTime() + this.deps.notificationTtlS * 1000);
    const type = `incoming_call.${state}` as const;
    return {
      id,
      call_id: call.call_id,
      device_id: deviceId,
      type,
      step: stepOf[state],
      endpoint,
      payload: JSON.stringify({
        type,
        call_id: call.call_id,
        msisdn: call.callee,
        caller: call.caller,
        caller_name: call.caller_name,
        device_id: deviceId,
        timestamp: now.toISOString(),
        expires_at: expiresAt.toISOString(),
      }),
      status: 'pending',
      due_at: now,
      expires_at: expiresAt,
      created_at: now,
      correlation_id: call.correlation_id,
    };
  }

  /** Newest first. */
  async list(query: { msisdn?: string | undefined; since?: Date | undefined; limit?: number | undefined; cursor?: string | undefined }) {
    const limit = query.limit ?? 50;
    let select = this.deps.db.selectFrom('incoming_calls').selectAll();
    if (query.msisdn !== undefined) select = select.where('callee', '=', this.msisdnOf('querystring.msisdn', query.msisdn));
    if (query.since !== undefined) select = select.where('received_at', '>=', query.since);
    const before = decodeCursor(query.cursor);
    if (before !== undefined) select = select.where('seq', '<', before);
    const rows = await select.orderBy('seq', 'desc').limit(limit + 1).execute();
    const page = toPage(rows, limit, presentIncomingCall, (row) => row.seq);
    // Each call's speaker deliveries, in one query for the page.
    const deliveries = new Map<string, ReturnType<typeof presentDelivery>[]>();
    for (const row of await repository.notificationsOfCalls(this.deps.db, page.items.map((call) => call.call_id))) {
      const list = deliveries.get(row.call_id) ?? [];
      list.push(presentDelivery(row));
      deliveries.set(row.call_id, list);
    }
    return { ...page, items: page.items.map((call) => ({ ...call, deliveries: deliveries.get(call.call_id) ?? [] })) };
  }

  async get(callId: string) {
    const call = await repository.findIncomingCall(this.deps.db, callId);
    if (!call) throw new ApiProblem('incoming_call_not_found', `No incoming call has call_id ${callId}.`);
    const notifications = await repository.notificationsOfCall(this.deps.db, callId);
    return { ...presentIncomingCall(call), notifications: notifications.map(presentNotification) };
  }
}
