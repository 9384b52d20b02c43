import type { Clock } from '../clock/clock.js';
import type { Trace } from '../event-log/event-log.js';
import { decodeCursor, toPage } from '../http/pagination.js';
import { ApiProblem } from '../http/problems.js';
import type { Db } from '../storage/database.js';
import { noEffects, type AlarmEscalation, type EscalationEffects } from './alarm-escalation.js';
import * as repository from './alarms-repository.js';
import type { AlarmRow, CallRow } from './alarms-repository.js';
import type { CallStatus } from './escalation.js';
import { isoOrNull } from '../http/schemas.js';

export function presentCall(row: CallRow) {
  return {
    id: row.id,
    alarm_id: row.alarm_id,
    to: row.to_number,
    position: row.position,
    attempt: row.attempt,
    status: row.status as CallStatus,
    acknowledged: row.acknowledged,
    hangup_cause: row.hangup_cause,
    sip_code: row.sip_code,
    redial_of: row.redial_of,
    queued_at: row.queued_at.toISOString(),
    due_at: row.due_at.toISOString(),
    dialing_at: isoOrNull(row.dialing_at),
    ringing_at: isoOrNull(row.ringing_at),
    answered_at: isoOrNull(row.answered_at),
    ended_at: isoOrNull(row.ended_at),
  };
}

export function presentAlarm(row: AlarmRow) {
  return {
    id: row.id,
    rule_id: row.rule_id,
    device_id: row.device_id,
    msisdn: row.msisdn,
    event_id: row.event_id,
    event_type: row.event_type,
    status: row.status as 'active' | 'resolved' | 'exhausted' | 'canceled',
    action: row.action,
    correlation_id: row.correlation_id,
    started_at: row.started_at.toISOString(),
    ended_at: row.ended_at?.toISOString() ?? null,
    end_reason: row.end_reason,
  };
}

export interface AlarmFilter {
  status?: string | undefined;
  device_id?: string | undefined;
  rule_id?: number | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

export interface CallFilter {
  status?: string | undefined;
  alarm_id?: string | undefined;
  to?: string | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
}

export class AlarmsService {
  constructor(
    private readonly deps: { db: Db; escalation: AlarmEscalation; clock: Clock; afterCommit: (effects: EscalationEffects) => void },
  ) {}

  /** Newest first. */
  async list(filter: AlarmFilter) {
    const limit = filter.limit ?? 50;
    let query = this.deps.db.selectFrom('alarms').selectAll();
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    if (filter.device_id !== undefined) query = query.where('device_id', '=', filter.device_id);
    if (filter.rule_id !== undefined) query = query.where('rule_id', '=', filter.rule_id);
    const before = decodeCursor(filter.cursor);
    if (before !== undefined) query = query.where('seq', '<', before);
    const rows = await query.orderBy('seq', 'desc').limit(limit + 1).execute();
    return toPage(rows, limit, presentAlarm, (row) => row.seq);
  }

  async get(id: string) {
    const alarm = await repository.findAlarm(this.deps.db, id);
    if (!alarm) throw new ApiProblem('alarm_not_found', `No alarm has id ${id}.`);
    const calls = await this.deps.db.selectFrom('calls').selectAll().where('alarm_id', '=', id).orderBy('seq').execute();
    return { ...presentAlarm(alarm), calls: calls.map(presentCall) };
  }

  async cancel(id: string, trace: Trace) {
    const effects = noEffects();
    await this.deps.db.transaction().execute(async (trx) => {
      const alarm = await repository.findAlarm(trx, id, { forUpdate: true });
      if (!alarm) throw new ApiProblem('alarm_not_found', `No alarm has id ${id}.`);
      if (alarm.status !== 'active') throw new ApiProblem('alarm_not_active', `The alarm has already ended (${alarm.status}).`);
      await this.deps.escalation.endAlarm(trx, alarm, 'canceled', `canceled by ${trace.actor ?? 'API'}`, effects);
    });
    this.deps.afterCommit(effects);
    return this.get(id);
  }

  /** Newest first. */
  async listCalls(filter: CallFilter) {
    const limit = filter.limit ?? 50;
    let query = this.deps.db.selectFrom('calls').selectAll();
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    if (filter.alarm_id !== undefined) query = query.where('alarm_id', '=', filter.alarm_id);
    if (filter.to !== undefined) query = query.where('to_number', '=', filter.to);
    const before = decodeCursor(filter.cursor);
    if (before !== undefined) query = query.where('seq', '<', before);
    const rows = await query.orderBy('seq', 'desc').limit(limit + 1).execute();
    return toPage(rows, limit, presentCall, (row) => row.seq);
  }
}
