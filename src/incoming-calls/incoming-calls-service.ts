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
 * share one transaction and one INSERT of their log rows.
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
import type { DeviceRow } from '../storage/schema.js';
import * as repository from './incoming-calls-repository.js';
import type { IncomingCallRow, NotificationRow } from './incoming-calls-repository.js';
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

export class IncomingCallsService {
  readonly #intake: GroupCommit<ReportSubmission, Reported>;

  constructor(
    private readonly deps: {
      db: Db;
      clock: Clock;
      defaultCountry: string;
      /** How long a notification stays worth delivering. */
      notificationTtlS: number;
      /** Called after the commit when notifications were written (the first attempt starts at once). */
      notificationsQueued: () => void;
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

  /** Writes a batch of reports in one transaction; a report refused (4xx) is refused alone. */
  async #write(batch: readonly ReportSubmission[]): Promise<ItemOutcome<Reported>[]> {
    const logged: EventLogEntry[] = [];
    const outcomes: ItemOutcome<Reported>[] = [];
    const recorded: { state: CallState; source: 'api' | 'freeswitch' }[] = [];
    let queued = 0;
    await transactionWithEventLog(this.deps.db, async (trx) => {
      for (const { input, trace, source } of batch) {
        try {
          const written = await this.#writeOne(trx, input, trace, source, logged);
          outcomes.push({ value: { ...written.result, correlationId: written.correlationId } });
          if (written.recorded) recorded.push({ state: written.recorded, source });
          queued += written.queued;
        } catch (error) {
          // Refused before it wrote anything (a 4xx): the transaction goes on with the others.
          if (!(error instanceof ApiProblem)) throw error;
          outcomes.push({ error });
        }
      }
    });
    logSteps(this.deps.logger, logged);
    for (const { state, source } of recorded) this.deps.metrics.incomingCalls.inc({ state, source });
    if (queued > 0) this.deps.notificationsQueued();
    return outcomes;
  }

  async #writeOne(
    trx: DbOrTrx,
    input: IncomingCallReport,
    trace: Trace,
    source: 'api' | 'freeswitch',
    logged: EventLogEntry[],
  ): Promise<{ result: IncomingCallResult; correlationId: string; recorded: CallState | undefined; queued: number }> {
    const callee = this.msisdnOf('body.callee', input.callee);
    const state = input.state ?? 'ringing';
    const now = this.deps.clock.now();
    // The first report of a call (the usual case) is one INSERT; a later one finds it taken.
    const inserted = await repository.insertIncomingCall(trx, {
      call_id: input.call_id,
      caller: this.callerOf(input.caller),
      caller_name: input.caller_name ?? null,
      callee,
      state,
      source,
      correlation_id: trace.correlationId,
      received_at: now,
      ringing_at: state === 'ringing' ? now : null,
      answered_at: state === 'answered' ? now : null,
      ended_at: state === 'ended' ? now : null,
    });
    if (inserted) {
      const queued = state === 'ringing' ? await this.announceRinging(trx, inserted, now, trace, logged) : 0;
      if (state !== 'ringing') await this.logState(trx, inserted, state, 0, trace, { first_heard: state }, logged);
      return { result: { call_id: inserted.call_id, state, notified_devices: queued }, correlationId: trace.correlationId, recorded: state, queued };
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
      return { result: { call_id: call.call_id, state: current, notified_devices: notified }, correlationId, recorded: undefined, queued: 0 };
    }
    await repository.setIncomingCallState(trx, call.call_id, state as 'answered' | 'ended', now);
    const queued = await this.followUp(trx, call, state as 'answered' | 'ended', now, trace, logged);
    return { result: { call_id: call.call_id, state, notified_devices: queued }, correlationId, recorded: state, queued };
  }

  private async announceRinging(trx: DbOrTrx, call: IncomingCallRow, now: Date, trace: Trace, logged: EventLogEntry[]): Promise<number> {
    const devices = await repository.announcingDevices(trx, call.callee);
    if (devices.length === 0) {
      await this.record(trx, logged, {
        type: 'incoming_call.no_devices',
        status: 'info',
        msisdn: call.callee,
        correlationId: call.correlation_id,
        requestId: trace.requestId,
        details: { call_id: call.call_id, caller: call.caller, source: call.source },
      });
      return 0;
    }
    const count = await repository.insertNotifications(trx, devices.map((device) => this.notification(call, device.device_id, device.endpoint!, 'ringing', now)));
    await this.record(trx, logged, {
      type: 'incoming_call.received',
      status: 'ok',
      msisdn: call.callee,
      correlationId: call.correlation_id,
      requestId: trace.requestId,
      details: { call_id: call.call_id, caller: call.caller, caller_name: call.caller_name, source: call.source, devices: devices.map((device: DeviceRow) => device.device_id) },
    });
    return count;
  }

  private async followUp(trx: DbOrTrx, call: IncomingCallRow, state: 'answered' | 'ended', now: Date, trace: Trace, logged: EventLogEntry[]): Promise<number> {
    const superseded = await repository.supersedePendingRinging(trx, call.call_id);
    const ringing = (await repository.notificationsOfCall(trx, call.call_id)).filter(
      (notification) => notification.type === 'incoming_call.ringing' && (notification.status === 'delivering' || notification.status === 'delivered'),
    );
    const count = await repository.insertNotifications(trx, ringing.map((notification) => this.notification(call, notification.device_id, notification.endpoint, state, now)));
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

  private notification(call: IncomingCallRow, deviceId: string, endpoint: string, state: CallState, now: Date) {
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
