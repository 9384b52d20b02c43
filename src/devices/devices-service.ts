import { randomBytes } from 'node:crypto';
import { appendEvent, type Trace } from '../event-log/event-log.js';
import { decodeCursor, toPage } from '../http/pagination.js';
import { ApiProblem, invalidField } from '../http/problems.js';
import { normalizeMsisdn } from '../phone-numbers/msisdn.js';
import type { Db } from '../storage/database.js';
import { uniqueViolation } from '../storage/errors.js';
import type { DeviceRow, DeviceUpdate } from '../storage/schema.js';
import { deviceTypes, type DeviceType } from './device-types.js';
import * as repository from './devices-repository.js';
import type { CreateDeviceBody, UpdateDeviceBody } from './devices-schemas.js';
import type { OutboundPolicy } from '../notifications/outbound-policy.js';
import { parseEndpoint, redactEndpoint } from './endpoint.js';

/** A Standard Webhooks signing secret: `whsec_` and base64 of 32 random bytes. */
export function generateSigningSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function presentDevice(row: DeviceRow) {
  return {
    device_id: row.device_id,
    type: row.type as DeviceType,
    msisdn: row.msisdn,
    name: row.name,
    endpoint: row.endpoint,
    metadata: row.metadata,
    enabled: row.enabled,
    has_signing_secret: row.signing_secret !== null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export class DevicesService {
  constructor(
    private readonly db: Db,
    private readonly defaultCountry: string,
    /** Refuses endpoints in private, loopback, link-local and metadata ranges unless allowed. */
    private readonly outbound: OutboundPolicy,
  ) {}

  /** The E.164 form of a number given in a request field, or a 422 naming that field. */
  msisdnOf(field: string, text: string): string {
    const result = normalizeMsisdn(text, this.defaultCountry);
    if (!result.ok) throw invalidField(field, result.reason);
    return result.e164;
  }

  async create(input: CreateDeviceBody, trace: Trace): Promise<{ device: DeviceRow; signingSecret: string | null }> {
    const msisdn = this.msisdnOf('body.msisdn', input.msisdn);
    const spec = deviceTypes[input.type];
    const endpoint = await this.checkEndpoint(input.type, input.endpoint ?? null);
    const signingSecret = spec.signingSecret ? generateSigningSecret() : null;
    try {
      const device = await this.db.transaction().execute(async (trx) => {
        const row = await repository.insertDevice(trx, {
          device_id: input.device_id,
          type: input.type,
          msisdn,
          name: input.name ?? null,
          endpoint,
          metadata: JSON.stringify(input.metadata ?? {}),
          signing_secret: signingSecret,
          enabled: input.enabled ?? true,
        });
        await appendEvent(trx, {
          type: 'device.created',
          status: 'ok',
          deviceId: row.device_id,
          msisdn: row.msisdn,
          correlationId: trace.correlationId,
          requestId: trace.requestId,
          details: { type: row.type, name: row.name, endpoint: redactEndpoint(row.endpoint), enabled: row.enabled, by: trace.actor },
        });
        return row;
      });
      return { device, signingSecret };
    } catch (error) {
      if (uniqueViolation(error)) throw new ApiProblem('device_exists', `A device with device_id ${input.device_id} is already registered.`);
      throw error;
    }
  }

  async get(deviceId: string): Promise<DeviceRow> {
    const row = await repository.findDevice(this.db, deviceId);
    if (!row) throw notFound(deviceId);
    return row;
  }

  async list(query: { type?: DeviceType; msisdn?: string; limit?: number; cursor?: string }) {
    const limit = query.limit ?? 50;
    const rows = await repository.listDevices(this.db, {
      type: query.type,
      msisdn: query.msisdn === undefined ? undefined : this.msisdnOf('querystring.msisdn', query.msisdn),
      afterId: decodeCursor(query.cursor),
      limit,
    });
    return toPage(rows, limit, presentDevice);
  }

  async update(deviceId: string, input: UpdateDeviceBody, trace: Trace): Promise<DeviceRow> {
    const changes: DeviceUpdate = {};
    if (input.msisdn !== undefined) changes.msisdn = this.msisdnOf('body.msisdn', input.msisdn);
    if (input.name !== undefined) changes.name = input.name;
    if (input.metadata !== undefined) changes.metadata = JSON.stringify(input.metadata);
    if (input.enabled !== undefined) changes.enabled = input.enabled;
    const type = input.endpoint === undefined ? undefined : (await repository.findDevice(this.db, deviceId))?.type;
    if (input.endpoint !== undefined && type === undefined) throw notFound(deviceId);
    // Checked (DNS included) before the transaction, so no row lock waits on a resolver.
    const endpoint = input.endpoint === undefined ? undefined : await this.checkEndpoint(type as DeviceType, input.endpoint);
    return this.db.transaction().execute(async (trx) => {
      const current = await repository.findDevice(trx, deviceId, { forUpdate: true });
      if (!current) throw notFound(deviceId);
      if (endpoint !== undefined) {
        changes.endpoint = endpoint;
        // A new endpoint gets notifications again even if the old one answered 410 Gone.
        if (endpoint !== current.endpoint) changes.endpoint_gone_at = null;
      }
      const row = (await repository.updateDevice(trx, deviceId, changes))!;
      await appendEvent(trx, {
        type: 'device.updated',
        status: 'ok',
        deviceId,
        msisdn: row.msisdn,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: {
          changed: Object.keys(input),
          ...(changes.msisdn !== undefined && changes.msisdn !== current.msisdn ? { previous_msisdn: current.msisdn } : {}),
          ...(changes.endpoint !== undefined ? { endpoint: redactEndpoint(row.endpoint) } : {}),
          by: trace.actor,
        },
      });
      return row;
    });
  }

  async remove(deviceId: string, trace: Trace): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const row = await repository.deleteDevice(trx, deviceId);
      if (!row) throw notFound(deviceId);
      await appendEvent(trx, {
        type: 'device.deleted',
        status: 'ok',
        deviceId,
        msisdn: row.msisdn,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { type: row.type, by: trace.actor },
      });
    });
  }

  async rotateSecret(deviceId: string, trace: Trace): Promise<string> {
    return this.db.transaction().execute(async (trx) => {
      const current = await repository.findDevice(trx, deviceId, { forUpdate: true });
      if (!current) throw notFound(deviceId);
      if (!deviceTypes[current.type as DeviceType]?.signingSecret) {
        throw new ApiProblem('device_has_no_secret', `A ${current.type} receives no notifications, so it has no signing secret.`);
      }
      const secret = generateSigningSecret();
      await repository.updateDevice(trx, deviceId, { signing_secret: secret });
      await appendEvent(trx, {
        type: 'device.secret_rotated',
        status: 'ok',
        deviceId,
        msisdn: current.msisdn,
        correlationId: trace.correlationId,
        requestId: trace.requestId,
        details: { by: trace.actor },
      });
      return secret;
    });
  }

  /** The endpoint if the device type and the outbound policy accept it, or a 422 naming `field`. */
  async checkEndpoint(type: DeviceType, endpoint: string | null, field = 'body.endpoint'): Promise<string | null> {
    const spec = deviceTypes[type];
    if (endpoint === null) {
      if (spec.endpoint === 'required') throw invalidField(field, `is required for a ${type}`);
      return null;
    }
    if (spec.endpoint === 'forbidden') throw invalidField(field, `a ${type} takes no endpoint (the gateway sends it nothing)`);
    const parsed = parseEndpoint(endpoint);
    if (!parsed.ok) throw invalidField(field, parsed.reason);
    const allowed = await this.outbound.checkUrl(endpoint);
    if (!allowed.ok) throw invalidField(field, `${allowed.reason} (allow it with OUTBOUND_ALLOW_HOSTS)`);
    return endpoint;
  }
}

function notFound(deviceId: string): ApiProblem {
  return new ApiProblem('device_not_found', `No device has device_id ${deviceId}.`);
}
