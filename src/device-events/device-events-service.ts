/**
 * The webhook intake: a device reports an event; the gateway records it, matches rules, and
 * starts what they say, all in one transaction, before it answers. The same event_id again is a
 * duplicate: nothing new starts and the first outcome is returned.
 */
import { noEffects, record, type AlarmEscalation, type EscalationEffects } from '../alarms/alarm-escalation.js';
import * as alarms from '../alarms/alarms-repository.js';
import type { RuleTriggers, TriggerOutcome } from '../alarms/rule-triggers.js';
import type { Clock } from '../clock/clock.js';
import { deviceTypes, type DeviceType, type DeviceTypeSpec } from '../devices/device-types.js';
import { findDevice } from '../devices/devices-repository.js';
import { appendEvent, transactionWithEventLog, type EventLogEntry, type Trace } from '../event-log/event-log.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { ApiProblem, invalidField } from '../http/problems.js';
import { parseTimestampParameter } from '../http/schemas.js';
import type { RuleActionType } from '../rules/rule-actions.js';
import type { RulesService } from '../rules/rules-service.js';
import type { Db, DbOrTrx } from '../storage/database.js';
import { SIGNATURE_TOLERANCE_MS, type SignedMessage } from './webhook-signature.js';

/** How long a webhook-id is kept after its signed timestamp: the tolerance, plus as much for clock skew. */
export const WEBHOOK_ID_RETENTION_MS = 2 * SIGNATURE_TOLERANCE_MS;
const PRUNE_INTERVAL_MS = 60_000;

/** Thrown inside the intake transaction (rolling it back) when a signed message's id was seen. */
class ReplayedMessage extends Error {}

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
  #lastPrune = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly deps: {
      db: Db;
      rules: RulesService;
      triggers: RuleTriggers;
      escalation: AlarmEscalation;
      clock: Clock;
      /**
       * Called after the commit: the steps written are logged and counted, new calls may be due,
       * calls of ended alarms hung up.
       */
      afterCommit: (effects: EscalationEffects) => void;
      metrics: GatewayMetrics;
    },
  ) {}

  /**
   * The outcome, and the correlation id of the event's story (the original one for a duplicate).
   *
   * `signed`: the verified Standard Webhooks message carrying the event (when signatures are
   * required). Its webhook-id is recorded with the event, in the same transaction: a message seen
   * before is a replay and is refused (409), while the same event_id in a new message is a retry
   * and gets the first outcome. A request that fails records nothing, so its retry is accepted.
   */
  async receive(input: DeviceEventInput, trace: Trace, signed?: SignedMessage): Promise<IntakeResult & { correlationId: string }> {
    const { db, metrics } = this.deps;
    const device = await findDevice(db, input.device_id);
    if (!device) {
      const entry: EventLogEntry = {
        type: 'event.unknown_device',
        status: 'rejected',
        deviceId: input.device_id,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { event_id: input.event_id, event_type: input.event_type },
      };
      await appendEvent(db, entry);
      metrics.deviceEvent(input.event_type, 'unknown_device');
      this.deps.afterCommit({ ...noEffects(), logged: [entry] });
      throw new ApiProblem('device_not_found', `No device has device_id ${input.device_id}; register it first.`);
    }
    const spec: DeviceTypeSpec | undefined = deviceTypes[device.type as DeviceType];
    if (!spec?.events.includes(input.event_type)) {
      metrics.deviceEvent(input.event_type, 'rejected');
      throw invalidField('body.event_type', `a ${device.type} reports ${spec?.events.length ? spec.events.join(', ') : 'no events'}`);
    }
    const effects = noEffects();
    let correlationId = trace.correlationId;
    // Its event-log rows (four or more) are written by one INSERT just before the commit.
    const intake = transactionWithEventLog(db, async (trx): Promise<IntakeResult> => {
      if (signed && !(await this.#recordMessage(trx, signed, input.event_id))) throw new ReplayedMessage();
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
        correlationId = original.correlation_id;
        await record(trx, effects, {
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
        await record(trx, effects, ...entries.splice(0));
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
          await record(trx, effects, ...entries.splice(0));
          const trigger = this.deps.triggers[(rule.action as { type: RuleActionType }).type];
          const triggered: TriggerOutcome = await trigger.trigger(trx, { rule, device, event: { eventId: input.event_id, eventType: input.event_type }, trace, effects });
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
      await record(trx, effects, ...entries);
      await trx
        .updateTable('device_events')
        .set({ matched_rules: outcome.matched_rules, outcome: JSON.stringify(outcome) })
        .where('event_id', '=', input.event_id)
        .execute();
      return { ...outcome, status: 'accepted' };
    });
    let result: IntakeResult;
    try {
      result = await intake;
    } catch (error) {
      if (!(error instanceof ReplayedMessage) || !signed) throw error;
      const entry: EventLogEntry = {
        type: 'event.rejected',
        status: 'rejected',
        deviceId: device.device_id,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { reason: 'replayed webhook-id', webhook_id: signed.id, event_id: input.event_id },
      };
      await appendEvent(db, entry);
      metrics.deviceEvent(input.event_type, 'rejected');
      throw new ApiProblem(
        'webhook_replayed',
        `The message with webhook-id ${signed.id} was accepted before; it is not processed again. Send a new event with a new webhook-id (the same event_id is safe: it returns the first outcome).`,
      );
    }
    metrics.deviceEvent(input.event_type, result.status);
    this.deps.afterCommit(effects);
    if (signed) await this.#pruneMessages();
    return { ...result, correlationId };
  }

  /** Keeps a signed message's id; false when it was already kept (a replay). */
  async #recordMessage(trx: DbOrTrx, message: SignedMessage, eventId: string): Promise<boolean> {
    const now = this.deps.clock.now();
    const inserted = await trx
      .insertInto('webhook_messages')
      .values({
        webhook_id: message.id,
        event_id: eventId,
        signed_at: message.timestamp,
        received_at: now,
        expires_at: new Date(message.timestamp.getTime() + WEBHOOK_ID_RETENTION_MS),
      })
      .onConflict((conflict) => conflict.column('webhook_id').doNothing())
      .returning('webhook_id')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /** Drops ids no replay could use any more, at most once a minute. */
  async #pruneMessages(): Promise<void> {
    const now = this.deps.clock.now();
    if (now.getTime() - this.#lastPrune < PRUNE_INTERVAL_MS) return;
    this.#lastPrune = now.getTime();
    try {
      await this.deps.db.deleteFrom('webhook_messages').where('expires_at', '<', now).execute();
    } catch {
      // The event is committed and answered whatever happens here; the next prune retries.
    }
  }
}
