import { deviceTypes, type DeviceType } from '../devices/device-types.js';
import { findDevice } from '../devices/devices-repository.js';
import type { DevicesService } from '../devices/devices-service.js';
import { appendEvent, type Trace } from '../event-log/event-log.js';
import { decodeCursor, toPage } from '../http/pagination.js';
import { ApiProblem, invalidField } from '../http/problems.js';
import type { Db, DbOrTrx } from '../storage/database.js';
import type { RuleRow, RuleUpdate } from '../storage/schema.js';
import { describeAction, normalizeAction, storedAction, type ActionHelpers, type RuleActionInput } from './rule-actions.js';
import * as repository from './rules-repository.js';
import { DEFAULT_COOLDOWN_S, type CreateRuleBody, type RuleListQuery, type UpdateRuleBody } from './rules-schemas.js';

import type { MatchableEvent, RuleMatch } from './rules-repository.js';

export function presentRule(row: RuleRow) {
  return {
    id: row.id,
    name: row.name,
    enabled: row.enabled,
    event_type: row.event_type,
    device_id: row.device_id,
    msisdn: row.msisdn,
    action: storedAction(row.action),
    cooldown_s: row.cooldown_s,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export class RulesService {
  constructor(
    private readonly db: Db,
    private readonly devices: DevicesService,
  ) {}

  async create(input: CreateRuleBody, trace: Trace): Promise<RuleRow> {
    if ((input.device_id === undefined) === (input.msisdn === undefined)) throw targetProblem(input.device_id !== undefined);
    const msisdn = input.msisdn === undefined ? null : this.devices.msisdnOf('body.msisdn', input.msisdn);
    const action = this.normalizeAction(input.action);
    return this.db.transaction().execute(async (trx) => {
      if (input.device_id !== undefined) await checkDevice(trx, input.device_id, input.event_type, { device: 'body.device_id', eventType: 'body.event_type' });
      const row = await repository.insertRule(trx, {
        name: input.name,
        enabled: input.enabled ?? true,
        event_type: input.event_type,
        device_id: input.device_id ?? null,
        msisdn,
        action: JSON.stringify(action),
        cooldown_s: input.cooldown_s ?? DEFAULT_COOLDOWN_S,
      });
      await appendEvent(trx, {
        type: 'rule.created',
        status: 'ok',
        deviceId: row.device_id,
        msisdn: row.msisdn,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: {
          rule_id: row.id,
          name: row.name,
          event_type: row.event_type,
          enabled: row.enabled,
          cooldown_s: row.cooldown_s,
          action: describeAction(action),
          by: trace.actor,
        },
      });
      return row;
    });
  }

  async get(id: number): Promise<RuleRow> {
    const row = await repository.findRule(this.db, id);
    if (!row) throw notFound(id);
    return row;
  }

  async list(query: RuleListQuery) {
    const limit = query.limit ?? 50;
    const rows = await repository.listRules(this.db, {
      eventType: query.event_type,
      deviceId: query.device_id,
      msisdn: query.msisdn === undefined ? undefined : this.devices.msisdnOf('querystring.msisdn', query.msisdn),
      enabled: query.enabled,
      afterId: decodeCursor(query.cursor),
      limit,
    });
    return toPage(rows, limit, presentRule);
  }

  async update(id: number, input: UpdateRuleBody, trace: Trace): Promise<RuleRow> {
    if (input.device_id !== undefined && input.msisdn !== undefined) throw targetProblem(true);
    const changes: RuleUpdate = {};
    if (input.name !== undefined) changes.name = input.name;
    if (input.enabled !== undefined) changes.enabled = input.enabled;
    if (input.cooldown_s !== undefined) changes.cooldown_s = input.cooldown_s;
    if (input.event_type !== undefined) changes.event_type = input.event_type;
    if (input.device_id !== undefined) {
      changes.device_id = input.device_id;
      changes.msisdn = null;
    }
    if (input.msisdn !== undefined) {
      changes.msisdn = this.devices.msisdnOf('body.msisdn', input.msisdn);
      changes.device_id = null;
    }
    const action = input.action === undefined ? undefined : this.normalizeAction(input.action);
    if (action !== undefined) changes.action = JSON.stringify(action);
    return this.db.transaction().execute(async (trx) => {
      const current = await repository.findRule(trx, id, { forUpdate: true });
      if (!current) throw notFound(id);
      const deviceId = changes.device_id !== undefined ? changes.device_id : current.device_id;
      // The device must report the event type whenever either of them changes.
      if (deviceId !== null && (input.device_id !== undefined || input.event_type !== undefined)) {
        await checkDevice(trx, deviceId, changes.event_type ?? current.event_type, {
          device: input.device_id !== undefined ? 'body.device_id' : 'body.event_type',
          eventType: input.event_type !== undefined ? 'body.event_type' : 'body.device_id',
        });
      }
      const row = (await repository.updateRule(trx, id, changes))!;
      const targetChanged = row.device_id !== current.device_id || row.msisdn !== current.msisdn;
      await appendEvent(trx, {
        type: 'rule.updated',
        status: 'ok',
        deviceId: row.device_id,
        msisdn: row.msisdn,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: {
          rule_id: row.id,
          changed: Object.keys(input),
          ...(targetChanged ? { previous_target: { device_id: current.device_id, msisdn: current.msisdn } } : {}),
          ...(action !== undefined ? { action: describeAction(action) } : {}),
          by: trace.actor,
        },
      });
      return row;
    });
  }

  /** Alarms keep a snapshot of the action, so a rule can go while alarms it started still run. */
  async remove(id: number, trace: Trace): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const row = await repository.deleteRule(trx, id);
      if (!row) throw notFound(id);
      await appendEvent(trx, {
        type: 'rule.deleted',
        status: 'ok',
        deviceId: row.device_id,
        msisdn: row.msisdn,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { rule_id: row.id, name: row.name, event_type: row.event_type, by: trace.actor },
      });
    });
  }

  /**
   * The enabled rules each event triggers, with each rule's alarm state for the event's device
   * (see `findMatches`), for a whole intake batch. `db` is the caller's transaction (the webhook
   * intake's).
   */
  async findMatches(db: DbOrTrx, events: readonly MatchableEvent[]): Promise<RuleMatch[]> {
    return repository.findMatches(db, events);
  }

  private normalizeAction(input: RuleActionInput) {
    const helpers: ActionHelpers = { field: 'body.action', msisdnOf: (field, text) => this.devices.msisdnOf(field, text) };
    return normalizeAction(input, helpers);
  }
}

/**
 * A device-bound rule needs a registered device whose type reports the event type. `fields` says
 * which request field each failure is named on (the one the client changed).
 */
async function checkDevice(db: DbOrTrx, deviceId: string, eventType: string, fields: { device: string; eventType: string }): Promise<void> {
  const device = await findDevice(db, deviceId);
  if (!device) throw invalidField(fields.device, `no device ${deviceId} is registered`);
  const events: readonly string[] = deviceTypes[device.type as DeviceType]?.events ?? [];
  if (!events.includes(eventType)) {
    const reports = events.length > 0 ? `reports only ${events.join(', ')}` : 'reports no events';
    throw invalidField(fields.eventType, `device ${deviceId} (a ${device.type}) ${reports}, not ${eventType}`);
  }
}

function targetProblem(both: boolean): ApiProblem {
  const message = both
    ? 'give device_id or msisdn, not both'
    : 'give device_id (one device) or msisdn (every device bound to the number)';
  return new ApiProblem('validation_failed', `body.device_id, body.msisdn: ${message}`, [
    { field: 'body.device_id', message },
    { field: 'body.msisdn', message },
  ]);
}

function notFound(id: number): ApiProblem {
  return new ApiProblem('rule_not_found', `No rule has id ${id}.`);
}
