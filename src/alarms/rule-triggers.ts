/**
 * What each rule action does when its rule matches an event. The intake looks the handler up by
 * the action's `type` and knows nothing else about actions: a new action (an SMS, a speaker
 * announcement) is a new entry here and in src/rules/rule-actions.ts.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock/clock.js';
import type { EventLogEntry, Trace } from '../event-log/event-log.js';
import type { CallAction, RuleActionType } from '../rules/rule-actions.js';
import type { RuleMatch } from '../rules/rules-repository.js';
import type { DbOrTrx } from '../storage/database.js';
import type { DeviceRow, RuleRow } from '../storage/schema.js';
import type { AlarmEscalation, CallToDial } from './alarm-escalation.js';
import type { NewAlarmRow } from './alarms-repository.js';

export interface TriggerContext {
  rule: RuleRow;
  /** The rule's active alarm for the device, else its latest (read with the rule: `findMatches`). */
  latestAlarm: RuleMatch['latestAlarm'];
  device: DeviceRow;
  event: { eventId: string; eventType: string };
  trace: Trace;
}

export type TriggerOutcome =
  /**
   * `logged`: the log rows of what started, for the intake to write in its story's order; `dial`:
   * a call committed as claimed, for the dispatcher to place once the intake commits.
   */
  | { outcome: 'started'; alarmId: string; logged: EventLogEntry[]; dial?: CallToDial }
  | { outcome: 'suppressed'; reason: 'active_alarm' | 'cooldown'; alarmId?: string };

export interface RuleTrigger {
  /**
   * Triggers the matches of an intake batch at once, in the intake's transaction; one outcome per
   * context, in order. Each context is a distinct (rule, device) pair: the intake puts one event
   * per device in a batch.
   */
  triggerAll(trx: DbOrTrx, contexts: readonly TriggerContext[]): Promise<TriggerOutcome[]>;
}

/**
 * The `call` action: an alarm with its own id, and its first call in the same transaction, unless
 * the rule's alarm for the device is active or in its cooldown. A batch costs one statement
 * whatever its size: the new alarms with their first calls. The first calls are claimed by the
 * instance `dialingInstance` names, to be dialed as the intake commits; queued when it names none.
 */
export function callTrigger(escalation: AlarmEscalation, clock: Clock, dialingInstance: () => string | undefined = () => undefined): RuleTrigger {
  return {
    async triggerAll(trx, contexts) {
      const now = clock.now();
      const outcomes = new Array<TriggerOutcome>(contexts.length);
      const starting: { index: number; row: NewAlarmRow; action: CallAction }[] = [];
      contexts.forEach(({ rule, latestAlarm: latest, device, event, trace }, index) => {
        if (latest?.status === 'active') outcomes[index] = { outcome: 'suppressed', reason: 'active_alarm', alarmId: latest.id };
        else if (latest && now.getTime() - latest.startedAt.getTime() < rule.cooldown_s * 1000) outcomes[index] = { outcome: 'suppressed', reason: 'cooldown' };
        else {
          starting.push({
            index,
            action: rule.action as unknown as CallAction,
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
      const started = new Map((await escalation.startAlarms(trx, starting, dialingInstance())).map((each) => [each.alarm.id, each]));
      for (const { index, row, action } of starting) {
        const start = started.get(row.id);
        // Another event (on another instance) started one a moment ago.
        if (!start) {
          outcomes[index] = { outcome: 'suppressed', reason: 'active_alarm' };
          continue;
        }
        const { alarm, logged, dial } = start;
        const { rule, device, event, trace } = contexts[index]!;
        const startedEntry: EventLogEntry = {
          type: 'alarm.started',
          status: 'ok',
          deviceId: device.device_id,
          msisdn: device.msisdn,
          correlationId: trace.correlationId,
          requestId: trace.requestId,
          details: { alarm_id: alarm.id, rule_id: rule.id, event_id: event.eventId, to: action.to },
        };
        outcomes[index] = { outcome: 'started', alarmId: alarm.id, logged: [startedEntry, ...logged], ...(dial ? { dial } : {}) };
      }
      return outcomes;
    },
  };
}

export type RuleTriggers = Record<RuleActionType, RuleTrigger>;
