/**
 * The webhook intake: a device reports an event; the gateway records it, matches rules, and
 * starts what they say, all in one transaction, before it answers. The same event_id again is a
 * duplicate: nothing new starts and the first outcome is returned.
 *
 * Events are written by group commit (src/storage/group-commit.ts): the events that arrive while
 * earlier ones are being written go together into the next transaction, each step one multi-row
 * statement for all of them. A batch of smoke events, up to a hundred, is seven round trips: the
 * devices, BEGIN, the events, the rule matches with their alarm states, the new alarms with their
 * first calls, the log rows with the outcomes, COMMIT (signed messages, duplicates and clearing
 * events add one each). Each event is answered after that commit, with its own outcome; a batch
 * holds one event per device, so events of one device are still taken one after the other.
 */
import { noEffects, record, type AlarmEscalation, type EscalationEffects } from '../alarms/alarm-escalation.js';
import * as alarms from '../alarms/alarms-repository.js';
import type { RuleTriggers, TriggerContext, TriggerOutcome } from '../alarms/rule-triggers.js';
import type { Clock } from '../clock/clock.js';
import { deviceTypes, type DeviceType, type DeviceTypeSpec } from '../devices/device-types.js';
import { findDevices } from '../devices/devices-repository.js';
import { takeHeldEntries, transactionWithEventLog, type EventLogEntry, type StepLogger, type Trace } from '../event-log/event-log.js';
import type { DeviceEventOutcome, GatewayMetrics } from '../metrics/metrics.js';
import { ApiProblem, invalidField } from '../http/problems.js';
import { parseTimestampParameter } from '../http/schemas.js';
import type { RuleActionType } from '../rules/rule-actions.js';
import type { MatchableEvent, RuleMatch } from '../rules/rules-repository.js';
import type { RulesService } from '../rules/rules-service.js';
import type { Db, DbOrTrx } from '../storage/database.js';
import { GroupCommit, type ItemOutcome } from '../storage/group-commit.js';
import type { DeviceRow, RuleRow } from '../storage/schema.js';
import { findEvents, insertNewEvents, insertNewMessages, pruneMessages, recordOutcomes } from './device-events-repository.js';
import { SIGNATURE_TOLERANCE_MS, type SignedMessage } from './webhook-signature.js';

/** How long a webhook-id is kept after its signed timestamp: the tolerance, plus as much for clock skew. */
export const WEBHOOK_ID_RETENTION_MS = 2 * SIGNATURE_TOLERANCE_MS;
const PRUNE_INTERVAL_MS = 60_000;
/** Most events in one intake transaction. */
const MAX_BATCH = 100;
/** Intake transactions at once: the next batch is written while the previous one commits. */
const MAX_RUNNING = 2;

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

/** The outcome, and the correlation id of the event's story (the original one for a duplicate). */
export type Received = IntakeResult & { correlationId: string };

interface Submission {
  input: DeviceEventInput;
  trace: Trace;
  signed: SignedMessage | undefined;
}

/** An event of the batch that is written (not refused before the transaction). */
interface Story {
  /** Its place in the batch. */
  index: number;
  input: DeviceEventInput;
  trace: Trace;
  signed: SignedMessage | undefined;
  device: DeviceRow;
  spec: DeviceTypeSpec;
  occurredAt: Date | null;
  /** Its event-log rows not written yet, in order. */
  entries: EventLogEntry[];
  outcome: Omit<IntakeResult, 'status'>;
}

export class DeviceEventsService {
  #lastPrune = Number.NEGATIVE_INFINITY;
  readonly #intake: GroupCommit<Submission, Received>;

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
      logger: StepLogger;
    },
  ) {
    this.#intake = new GroupCommit<Submission, Received>({
      maxBatch: MAX_BATCH,
      maxRunning: MAX_RUNNING,
      keys: ({ input, signed }) => [`device ${input.device_id}`, `event ${input.event_id}`, ...(signed ? [`message ${signed.id}`] : [])],
      write: (batch) => this.#write(batch),
      onRetry: (error, size) => deps.logger.warn({ err: error, events: size }, 'intake: a batch of events was refused; writing them one at a time'),
    });
  }

  /**
   * The outcome, and the correlation id of the event's story (the original one for a duplicate).
   *
   * `signed`: the verified Standard Webhooks message carrying the event (when signatures are
   * required). Its webhook-id is recorded with the event, in the same transaction: a message seen
   * before is a replay and is refused (409), while the same event_id in a new message is a retry
   * and gets the first outcome. A request that fails records nothing, so its retry is accepted.
   */
  receive(input: DeviceEventInput, trace: Trace, signed?: SignedMessage): Promise<Received> {
    return this.#intake.submit({ input, trace, signed });
  }

  /** Writes a batch of events in one transaction; one outcome per event, in order. */
  async #write(batch: Submission[]): Promise<ItemOutcome<Received>[]> {
    const { db, clock } = this.deps;
    const outcomes = new Array<ItemOutcome<Received>>(batch.length);
    /** Each event's outcome for the metrics, counted once committed. */
    const counted = new Array<DeviceEventOutcome>(batch.length);
    const refuse = (index: number, status: DeviceEventOutcome, error: unknown) => {
      outcomes[index] = { error };
      counted[index] = status;
    };
    const effects = noEffects();
    // Refused before the transaction: the log rows of those refusals are written with the batch.
    const refusals: EventLogEntry[] = [];
    const devices = await findDevices(db, batch.map(({ input }) => input.device_id));
    const stories: Story[] = [];
    batch.forEach(({ input, trace, signed }, index) => {
      const device = devices.get(input.device_id);
      if (!device) {
        refusals.push({
          type: 'event.unknown_device',
          status: 'rejected',
          deviceId: input.device_id,
          correlationId: trace.correlationId,
          requestId: trace.requestId,
          details: { event_id: input.event_id, event_type: input.event_type },
        });
        refuse(index, 'unknown_device', new ApiProblem('device_not_found', `No device has device_id ${input.device_id}; register it first.`));
        return;
      }
      const spec: DeviceTypeSpec | undefined = deviceTypes[device.type as DeviceType];
      if (!spec?.events.includes(input.event_type)) {
        refuse(index, 'rejected', invalidField('body.event_type', `a ${device.type} reports ${spec?.events.length ? spec.events.join(', ') : 'no events'}`));
        return;
      }
      let occurredAt: Date | null;
      try {
        occurredAt = parseTimestampParameter('body.occurred_at', input.occurred_at) ?? null;
      } catch (problem) {
        refuse(index, 'rejected', problem);
        return;
      }
      const outcome = { event_id: input.event_id, matched_rules: 0, alarm_ids: [], suppressed: 0, canceled_alarm_ids: [] };
      stories.push({ index, input, trace, signed, device, spec, occurredAt, entries: [], outcome });
    });

    // Its event-log rows are written by one INSERT just before the commit.
    await transactionWithEventLog(db, async (trx) => {
      await record(trx, effects, ...refusals);
      const now = clock.now();
      const live = await this.#withoutReplays(trx, stories, effects, refuse);
      const inserted = await insertNewEvents(
        trx,
        live.map(({ input, trace, device, occurredAt }) => ({
          event_id: input.event_id,
          device_id: device.device_id,
          event_type: input.event_type,
          occurred_at: occurredAt,
          received_at: now,
          data: JSON.stringify(input.data ?? {}),
          correlation_id: trace.correlationId,
        })),
      );
      const fresh = live.filter(({ input }) => inserted.has(input.event_id));
      const repeated = live.filter(({ input }) => !inserted.has(input.event_id));
      if (repeated.length > 0) {
        const originals = await findEvents(trx, repeated.map(({ input }) => input.event_id));
        for (const { index, input, trace, device } of repeated) {
          const original = originals.get(input.event_id)!;
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
          const first = original.outcome as unknown as Omit<IntakeResult, 'status'>;
          outcomes[index] = { value: { ...first, event_id: input.event_id, status: 'duplicate', correlationId: original.correlation_id } };
          counted[index] = 'duplicate';
        }
      }

      for (const story of fresh) {
        const { input } = story;
        log(story, 'event.received', 'ok', { event_id: input.event_id, event_type: input.event_type, occurred_at: input.occurred_at ?? null, data: input.data ?? {} });
      }
      await this.#clearAlarms(trx, fresh, effects);
      await this.#applyRules(trx, fresh, effects);
      for (const story of fresh) {
        await record(trx, effects, ...story.entries);
        outcomes[story.index] = { value: { ...story.outcome, status: 'accepted', correlationId: story.trace.correlationId } };
        counted[story.index] = 'accepted';
      }
      // The batch's log rows go with the outcomes: one statement for both.
      await recordOutcomes(
        trx,
        fresh.map(({ outcome }) => ({ eventId: outcome.event_id, matchedRules: outcome.matched_rules, outcome })),
        takeHeldEntries(trx),
      );
    });

    batch.forEach(({ input }, index) => this.deps.metrics.deviceEvent(input.event_type, counted[index]!));
    this.deps.afterCommit(effects);
    if (stories.some(({ signed }) => signed)) await this.#pruneMessages();
    return outcomes;
  }

  /**
   * Keeps the signed messages' ids; a message seen before is a replay: refused (409), with its
   * log row, and not written. Returns the stories to write.
   */
  async #withoutReplays(trx: DbOrTrx, stories: Story[], effects: EscalationEffects, refuse: (index: number, status: DeviceEventOutcome, error: unknown) => void): Promise<Story[]> {
    const signed = stories.filter((story) => story.signed);
    if (signed.length === 0) return stories;
    const now = this.deps.clock.now();
    const kept = await insertNewMessages(
      trx,
      signed.map(({ signed: message, input }) => ({
        webhook_id: message!.id,
        event_id: input.event_id,
        signed_at: message!.timestamp,
        received_at: now,
        expires_at: new Date(message!.timestamp.getTime() + WEBHOOK_ID_RETENTION_MS),
      })),
    );
    const replays = stories.filter(({ signed: message }) => message && !kept.has(message.id));
    for (const { index, input, trace, device, signed: message } of replays) {
      await record(trx, effects, {
        type: 'event.rejected',
        status: 'rejected',
        deviceId: device.device_id,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { reason: 'replayed webhook-id', webhook_id: message!.id, event_id: input.event_id },
      });
      refuse(
        index,
        'rejected',
        new ApiProblem(
          'webhook_replayed',
          `The message with webhook-id ${message!.id} was accepted before; it is not processed again. Send a new event with a new webhook-id (the same event_id is safe: it returns the first outcome).`,
        ),
      );
    }
    return stories.filter((story) => !replays.includes(story));
  }

  /** Ends the active alarms that the events clear (smoke_cleared ends the smoke alarm). */
  async #clearAlarms(trx: DbOrTrx, stories: readonly Story[], effects: EscalationEffects): Promise<void> {
    const clearing = stories.map((story) => ({ story, types: story.spec.clears?.[story.input.event_type] ?? [] })).filter(({ types }) => types.length > 0);
    if (clearing.length === 0) return;
    const active = await alarms.activeAlarmsOfDevices(
      trx,
      clearing.map(({ story }) => story.device.device_id),
      [...new Set(clearing.flatMap(({ types }) => types))],
    );
    for (const { story, types } of clearing) {
      for (const alarm of active.filter((each) => each.device_id === story.device.device_id && types.includes(each.event_type))) {
        // The event's own rows come first in its story.
        await record(trx, effects, ...story.entries.splice(0));
        if (await this.deps.escalation.endAlarm(trx, alarm, 'canceled', `${story.input.event_type} reported by ${story.device.device_id}`, effects)) {
          story.outcome.canceled_alarm_ids.push(alarm.id);
        }
      }
    }
  }

  /** Matches the events' rules with their alarm states (one query) and triggers them, by action type (one statement each). */
  async #applyRules(trx: DbOrTrx, stories: readonly Story[], effects: EscalationEffects): Promise<void> {
    for (const story of stories) {
      if (!story.device.enabled) log(story, 'event.ignored', 'suppressed', { event_id: story.input.event_id, reason: 'device disabled' });
    }
    const matching = stories.filter((story) => story.device.enabled);
    const found = await this.deps.rules.findMatches(
      trx,
      matching.map(({ input, device }): MatchableEvent => ({ eventType: input.event_type, deviceId: device.device_id, msisdn: device.msisdn })),
    );
    const matches = matching.map((story) => ({ story, matched: [] as RuleMatch[] }));
    for (const match of found) matches[match.event]!.matched.push(match);

    // Every (event, rule) match, triggered together per action type.
    const triggered = new Map<string, TriggerOutcome>();
    const matchKey = (story: Story, rule: RuleRow) => `${story.index} ${rule.id}`;
    const byAction = new Map<RuleActionType, { key: string; context: TriggerContext }[]>();
    for (const { story, matched } of matches) {
      for (const { rule, latestAlarm } of matched) {
        const type = (rule.action as { type: RuleActionType }).type;
        const context: TriggerContext = { rule, latestAlarm, device: story.device, event: { eventId: story.input.event_id, eventType: story.input.event_type }, trace: story.trace };
        byAction.set(type, [...(byAction.get(type) ?? []), { key: matchKey(story, rule), context }]);
      }
    }
    for (const [type, list] of byAction) {
      const results = await this.deps.triggers[type].triggerAll(
        trx,
        list.map(({ context }) => context),
      );
      list.forEach(({ key }, index) => triggered.set(key, results[index]!));
    }

    // Each event's story in the order one event alone would tell it.
    for (const { story, matched } of matches) {
      const { input, outcome } = story;
      outcome.matched_rules = matched.length;
      for (const { rule } of matched) {
        log(story, 'rule.matched', 'ok', { event_id: input.event_id, rule_id: rule.id, rule_name: rule.name });
        const result = triggered.get(matchKey(story, rule))!;
        if (result.outcome === 'started') {
          story.entries.push(...result.logged);
          outcome.alarm_ids.push(result.alarmId);
          if (result.dial) effects.dial.push(result.dial);
          else effects.queued = true;
        } else {
          outcome.suppressed++;
          log(story, 'rule.suppressed', 'suppressed', { event_id: input.event_id, rule_id: rule.id, reason: result.reason, ...(result.alarmId ? { alarm_id: result.alarmId } : {}) });
        }
      }
      if (matched.length === 0) log(story, 'event.no_rules', 'info', { event_id: input.event_id });
    }
  }

  /** Drops ids no replay could use any more, at most once a minute. */
  async #pruneMessages(): Promise<void> {
    const now = this.deps.clock.now();
    if (now.getTime() - this.#lastPrune < PRUNE_INTERVAL_MS) return;
    this.#lastPrune = now.getTime();
    try {
      await pruneMessages(this.deps.db, now);
    } catch {
      // The events are committed and answered whatever happens here; the next prune retries.
    }
  }
}

/** Adds a row to an event's story, with the event's device, number and trace. */
function log(story: Story, type: string, status: EventLogEntry['status'], details: Record<string, unknown>): void {
  const { device, trace } = story;
  story.entries.push({ type, status, deviceId: device.device_id, msisdn: device.msisdn, correlationId: trace.correlationId, requestId: trace.requestId, details });
}
