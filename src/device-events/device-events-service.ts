/**
 * The webhook intake: a device reports an event; the gateway records it, matches rules, and
 * starts what they say, all in one transaction, before it answers. The same event_id again is a
 * duplicate: nothing new starts and the first outcome is returned.
 */
import type { AlarmEscalation, EscalationEffects } from '../alarms/alarm-escalation.js';
import * as alarms from '../alarms/alarms-repository.js';
import type { RuleTriggers, TriggerOutcome } from '../alarms/rule-triggers.js';
import type { Clock } from '../clock/clock.js';
import { deviceTypes, type DeviceType, type DeviceTypeSpec } from '../devices/device-types.js';
import { findDevice } from '../devices/devices-repository.js';
import { appendEvent, appendEvents, transactionWithEventLog, type EventLogEntry, type Trace } from '../event-log/event-log.js';
import { ApiProblem, invalidField } from '../http/problems.js';
import { parseTimestampParameter } from '../http/schemas.js';
import type { RuleActionType } from '../rules/rule-actions.js';
import type { RulesService } from '../rules/rules-service.js';
import type { Db } from '../storage/database.js';

export interface DeviceEventInput {
  event_id: string;
  device_id: string;
  event_type: string;
  occurred_at?: string | undefined;
  data?: Record<string, unknown> | undefined;
}

export interface IntakeResult {
  event_id: string;
  status: 'accepted' | 'duplicate';
  matched_rules: number;
  alarm_ids: string[];
  suppressed: number;
  canceled_alarm_ids: string[];
}

export class DeviceEventsService {
  constructor(
    private readonly deps: {
      db: Db;
      rules: RulesService;
      triggers: RuleTriggers;
      escalation: AlarmEscalation;
      clock: Clock;
      /** Called after the commit: new calls may be due, calls of ended alarms hung up. */
      afterCommit: (effects: EscalationEffects) => void;
    },
  ) {}

  async receive(input: DeviceEventInput, trace: Trace): Promise<IntakeResult> {
    const { db } = this.deps;
    const device = await findDevice(db, input.device_id);
    if (!device) {
      await appendEvent(db, {
        type: 'event.unknown_device',
        status: 'rejected',
        deviceId: input.device_id,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { event_id: input.event_id, event_type: input.event_type },
      });
      throw new ApiProblem('device_not_found', `No device has device_id ${input.device_id}; register it first.`);
    }
    const spec: DeviceTypeSpec | undefined = deviceTypes[device.type as DeviceType];
    if (!spec?.events.includes(input.event_type)) {
      throw invalidField('body.event_type', `a ${device.type} reports ${spec?.events.length ? spec.events.join(', ') : 'no events'}`);
    }
    const effects: EscalationEffects = { hangups: [], queued: false };
    const result = await transactionWithEventLog(db, async (trx): Promise<IntakeResult> => {
      const inserted = await trx
        .insertInto('device_events')
        .values({
          event_id: input.event_id,
          device_id: device.device_id,
          event_type: input.event_type,
          occurred_at: parseTimestampParameter('body.occurred_at', input.occurred_at) ?? null,
          received_at: this.deps.clock.now(),
          data: JSON.stringify(input.data ?? {}),
          correlation_id: trace.correlationId,
        })
        .onConflict((conflict) => conflict.column('event_id').doNothing())
        .returning('event_id')
        .executeTakeFirst();
      if (!inserted) {
        const original = await trx.selectFrom('device_events').selectAll().where('event_id', '=', input.event_id).executeTakeFirstOrThrow();
        await appendEvent(trx, {
          type: 'event.duplicate',
          status: 'duplicate',
          deviceId: original.device_id,
          msisdn: device.msisdn,
          // The duplicate belongs to the story of the original event.
          correlationId: original.correlation_id,
          requestId: trace.requestId,
          details: { event_id: input.event_id, event_type: input.event_type },
        });
        return { ...(original.outcome as unknown as Omit<IntakeResult, 'status'>), event_id: input.event_id, status: 'duplicate' };
      }

      const entries: EventLogEntry[] = [];
      const log = (type: string, status: EventLogEntry['status'], details: Record<string, unknown>) =>
        entries.push({ type, status, deviceId: device.device_id, msisdn: device.msisdn, correlationId: trace.correlationId, requestId: trace.requestId, details });
      log('event.received', 'ok', { event_id: input.event_id, event_type: input.event_type, occurred_at: input.occurred_at ?? null, data: input.data ?? {} });

      const canceledAlarmIds: string[] = [];
      const clearedTypes = spec.clears?.[input.event_type] ?? [];
      for (const alarm of await alarms.activeAlarmsOfDevice(trx, device.device_id, clearedTypes)) {
        await appendEvents(trx, entries.splice(0));
        if (await this.deps.escalation.endAlarm(trx, alarm, 'canceled', `${input.event_type} reported by ${device.device_id}`, effects)) {
          canceledAlarmIds.push(alarm.id);
        }
      }

      const outcome: Omit<IntakeResult, 'status'> = { event_id: input.event_id, matched_rules: 0, alarm_ids: [], suppressed: 0, canceled_alarm_ids: canceledAlarmIds };
      if (!device.enabled) {
        log('event.ignored', 'suppressed', { event_id: input.event_id, reason: 'device disabled' });
      } else {
        const rules = await this.deps.rules.findMatching(trx, { eventType: input.event_type, deviceId: device.device_id, msisdn: device.msisdn });
        outcome.matched_rules = rules.length;
        for (const rule of rules) {
          log('rule.matched', 'ok', { event_id: input.event_id, rule_id: rule.id, rule_name: rule.name });
          await appendEvents(trx, entries.splice(0));
          const trigger = this.deps.triggers[(rule.action as { type: RuleActionType }).type];
          const triggered: TriggerOutcome = await trigger.trigger(trx, { rule, device, event: { eventId: input.event_id, eventType: input.event_type }, trace });
          if (triggered.outcome === 'started') {
            outcome.alarm_ids.push(triggered.alarmId);
            effects.queued = true;
          } else {
            outcome.suppressed++;
            log('rule.suppressed', 'suppressed', { event_id: input.event_id, rule_id: rule.id, reason: triggered.reason, ...(triggered.alarmId ? { alarm_id: triggered.alarmId } : {}) });
          }
        }
        if (rules.length === 0) log('event.no_rules', 'info', { event_id: input.event_id });
      }
      await appendEvents(trx, entries);
      await trx
        .updateTable('device_events')
        .set({ matched_rules: outcome.matched_rules, outcome: JSON.stringify(outcome) })
        .where('event_id', '=', input.event_id)
        .execute();
      return { ...outcome, status: 'accepted' };
    });
    this.deps.afterCommit(effects);
    return result;
  }
}
