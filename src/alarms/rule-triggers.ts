/**
 * What each rule action does when its rule matches an event. The intake looks the handler up by
 * the action's `type` and knows nothing else about actions: a new action (an SMS, a speaker
 * announcement) is a new entry here and in src/rules/rule-actions.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock/clock.js';
import type { Insertable } from 'kysely';
import type { EventLogEntry, Trace } from '../event-log/event-log.js';
import type { RuleAction, RuleActionType } from '../rules/rule-actions.js';
import type { DbOrTrx } from '../storage/database.js';
import type { Database, DeviceRow, RuleRow } from '../storage/schema.js';
import type { AlarmEscalation } from './alarm-escalation.js';
import * as repository from './alarms-repository.js';

export interface TriggerContext {
  rule: RuleRow;
  device: DeviceRow;
  event: { eventId: string; eventType: string };
  trace: Trace;
}

export type TriggerOutcome =
  /** `logged`: the log rows of what started, for the intake to write in its story's order. */
  | { outcome: 'started'; alarmId: string; logged: EventLogEntry[] }
  | { outcome: 'suppressed'; reason: 'active_alarm' | 'cooldown'; alarmId?: string };

export interface RuleTrigger {
  /**
   * Triggers the matches of an intake batch at once, in the intake's transaction; one outcome per
   * context, in order. Each context is a distinct (rule, device) pair: the intake puts one event
   * per device in a batch.
   */
  triggerAll(trx: DbOrTrx, contexts: readonly TriggerContext[]): Promise<TriggerOutcome[]>;
}

const pairKey = (ruleId: number, deviceId: string) => `${ruleId} ${deviceId}`;

/**
 * The `call` action: an alarm with its own id, and its first call queued in the same transaction,
 * unless the rule's alarm for the device is active or in its cooldown. A batch costs three
 * statements whatever its size: the alarms' state, the new alarms, their first calls.
 */
export function callTrigger(escalation: AlarmEscalation, clock: Clock): RuleTrigger {
  return {
    async triggerAll(trx, contexts) {
      const now = clock.now();
      const known = await repository.currentOrLatestAlarms(trx, contexts.map(({ rule, device }) => ({ ruleId: rule.id, deviceId: device.device_id })));
      const latestOf = new Map(known.map((alarm) => [pairKey(alarm.rule_id, alarm.device_id), alarm]));
      const outcomes = new Array<TriggerOutcome>(contexts.length);
      const starting: { index: number; row: Insertable<Database['alarms']> & { id: string } }[] = [];
      contexts.forEach(({ rule, device, event, trace }, index) => {
        const latest = latestOf.get(pairKey(rule.id, device.device_id));
        if (latest?.status === 'active') outcomes[index] = { outcome: 'suppressed', reason: 'active_alarm', alarmId: latest.id };
        else if (latest && now.getTime() - latest.started_at.getTime() < rule.cooldown_s * 1000) outcomes[index] = { outcome: 'suppressed', reason: 'cooldown' };
        else {
          starting.push({
            index,
            row: {
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
            },
          });
        }
      });
      const inserted = new Map((await repository.insertAlarmsIfNoneActive(trx, starting.map(({ row }) => row))).map((alarm) => [alarm.id, alarm]));
      const started = starting.filter(({ row }) => inserted.has(row.id));
      const queued = await escalation.queueFirstCalls(trx, started.map(({ row }) => inserted.get(row.id)!));
      const firstCallOf = new Map(queued.map((each) => [each.call.alarm_id, each.entry]));
      for (const { index, row } of starting) {
        const alarm = inserted.get(row.id);
        // Another event (on another instance) started one a moment ago.
        if (!alarm) {
          outcomes[index] = { outcome: 'suppressed', reason: 'active_alarm' };
          continue;
        }
        const { rule, device, event, trace } = contexts[index]!;
        const startedEntry: EventLogEntry = {
          type: 'alarm.started',
          status: 'ok',
          deviceId: device.device_id,
          msisdn: device.msisdn,
          correlationId: trace.correlationId,
          requestId: trace.requestId,
          details: { alarm_id: alarm.id, rule_id: rule.id, event_id: event.eventId, to: (rule.action as unknown as RuleAction).to },
        };
        outcomes[index] = { outcome: 'started', alarmId: alarm.id, logged: [startedEntry, firstCallOf.get(alarm.id)!] };
      }
      return outcomes;
    },
  };
}

export type RuleTriggers = Record<RuleActionType, RuleTrigger>;
