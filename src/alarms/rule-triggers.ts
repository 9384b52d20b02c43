/**
 * What each rule action does when its rule matches an event. The intake looks the handler up by
 * the action's `type` and knows nothing else about actions: a new action (an SMS, a speaker
 * announcement) is a new entry here and in src/rules/rule-actions.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock/clock.js';
import type { Trace } from '../event-log/event-log.js';
import type { RuleAction, RuleActionType } from '../rules/rule-actions.js';
import type { DbOrTrx } from '../storage/database.js';
import type { DeviceRow, RuleRow } from '../storage/schema.js';
import { record, type AlarmEscalation, type EscalationEffects } from './alarm-escalation.js';
import * as repository from './alarms-repository.js';

export interface TriggerContext {
  rule: RuleRow;
  device: DeviceRow;
  event: { eventId: string; eventType: string };
  trace: Trace;
  /** What the caller does once its transaction commits; the trigger adds to it. */
  effects: EscalationEffects;
}

export type TriggerOutcome =
  | { outcome: 'started'; alarmId: string }
  | { outcome: 'suppressed'; reason: 'active_alarm' | 'cooldown'; alarmId?: string };

export interface RuleTrigger {
  trigger(trx: DbOrTrx, context: TriggerContext): Promise<TriggerOutcome>;
}

/** The `call` action: an alarm with its own id, and its first call queued in the same transaction. */
export function callTrigger(escalation: AlarmEscalation, clock: Clock): RuleTrigger {
  return {
    async trigger(trx, { rule, device, event, trace, effects }) {
      const now = clock.now();
      const latest = await repository.currentOrLatestAlarm(trx, rule.id, device.device_id);
      if (latest?.status === 'active') return { outcome: 'suppressed', reason: 'active_alarm', alarmId: latest.id };
      if (latest && now.getTime() - latest.started_at.getTime() < rule.cooldown_s * 1000) return { outcome: 'suppressed', reason: 'cooldown' };
      const alarm = await repository.insertAlarmIfNoneActive(trx, {
        id: randomUUID(),
        rule_id: rule.id,
        device_id: device.device_id,
        msisdn: device.msisdn,
        event_id: event.eventId,
        event_type: event.eventType,
        status: 'active',
        action: JSON.stringify(rule.action),
        correlation_id: trace.correlationId,
        started_at: now,
      });
      // Another event (on another instance) started one a moment ago.
      if (!alarm) return { outcome: 'suppressed', reason: 'active_alarm' };
      await record(trx, effects, {
        type: 'alarm.started',
        status: 'ok',
        deviceId: device.device_id,
        msisdn: device.msisdn,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { alarm_id: alarm.id, rule_id: rule.id, event_id: event.eventId, to: (rule.action as unknown as RuleAction).to },
      });
      await escalation.queueFirstCall(trx, alarm, effects);
      return { outcome: 'started', alarmId: alarm.id };
    },
  };
}

export type RuleTriggers = Record<RuleActionType, RuleTrigger>;
