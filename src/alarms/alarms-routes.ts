import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DeviceId } from '../devices/devices-schemas.js';
import { Page, PageQuery } from '../http/pagination.js';
import { E164, Nullable, PhoneNumberInput, problems, StringEnum, Timestamp } from '../http/schemas.js';
import { traceOf } from '../http/trace.js';
import type { DevicesService } from '../devices/devices-service.js';
import type { AlarmsService } from './alarms-service.js';
import { callStatuses } from './escalation.js';

const alarmStatuses = ['active', 'resolved', 'exhausted', 'canceled'] as const;

export const Call = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'Also the FreeSWITCH channel uuid.' }),
    alarm_id: Type.String({ format: 'uuid' }),
    to: E164,
    position: Type.Integer({ description: 'Index of the number in the escalation list.' }),
    attempt: Type.Integer({ description: 'Attempt on that number, from 1.' }),
    status: StringEnum(callStatuses),
    acknowledged: Type.Boolean({ description: 'The callee pressed 1.' }),
    hangup_cause: Nullable(Type.String({ description: 'FreeSWITCH hangup cause (or OUTCOME_UNKNOWN / DEADLINE_EXCEEDED, judged by the gateway).' })),
    sip_code: Nullable(Type.Integer()),
    redial_of: Nullable(Type.String({ format: 'uuid', description: 'The call whose outcome was lost and which this one makes again.' })),
    queued_at: Timestamp,
    due_at: Timestamp,
    dialing_at: Nullable(Timestamp),
    ringing_at: Nullable(Timestamp),
    answered_at: Nullable(Timestamp),
    ended_at: Nullable(Timestamp),
  },
  { $id: 'Call' },
);

const alarmFields = {
  id: Type.String({ format: 'uuid' }),
  rule_id: Type.Integer(),
  device_id: Type.String(),
  msisdn: Nullable(Type.String()),
  event_id: Type.String(),
  event_type: Type.String(),
  status: StringEnum(alarmStatuses),
  action: Type.Record(Type.String(), Type.Unknown(), { description: "The rule's action as it was when the alarm started." }),
  correlation_id: Type.String({ description: 'Ties every event-log row of this alarm together.' }),
  started_at: Timestamp,
  ended_at: Nullable(Timestamp),
  end_reason: Nullable(Type.String()),
};
export const Alarm = Type.Object(alarmFields, { $id: 'Alarm' });
const AlarmWithCalls = Type.Object({ ...alarmFields, calls: Type.Array(Type.Ref('Call')) });

const AlarmParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

export const alarmsRoutes: FastifyPluginAsyncTypebox<{ alarms: AlarmsService; devices: DevicesService }> = async (app, { alarms, devices }) => {
  const adminOnly = { allow: ['admin'] } as const;

  app.get('/alarms', {
    config: adminOnly,
    schema: {
      tags: ['alarms'],
      summary: 'List alarms, newest first',
      querystring: Type.Object(
        {
          status: Type.Optional(StringEnum(alarmStatuses)),
          device_id: Type.Optional(DeviceId),
          rule_id: Type.Optional(Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })),
          ...PageQuery,
        },
        { additionalProperties: false },
      ),
      response: { 200: Page(Type.Ref('Alarm')), ...problems(401, 403, 422) },
    },
    handler: async (request) => alarms.list(request.query),
  });

  app.get('/alarms/:id', {
    config: adminOnly,
    schema: { tags: ['alarms'], summary: 'An alarm with its calls, in order', params: AlarmParams, response: { 200: AlarmWithCalls, ...problems(401, 403, 404, 422) } },
    handler: async (request) => alarms.get(request.params.id),
  });

  app.post('/alarms/:id/cancel', {
    config: adminOnly,
    schema: {
      tags: ['alarms'],
      summary: 'Cancel an active alarm',
      description: 'Pending calls are canceled and calls in flight hung up. An alarm that has ended: 409.',
      params: AlarmParams,
      response: { 200: AlarmWithCalls, ...problems(401, 403, 404, 409, 422) },
    },
    handler: async (request) => alarms.cancel(request.params.id, traceOf(request)),
  });

  app.get('/calls', {
    config: adminOnly,
    schema: {
      tags: ['alarms'],
      summary: 'List alarm calls, newest first',
      querystring: Type.Object(
        {
          status: Type.Optional(StringEnum(callStatuses)),
          alarm_id: Type.Optional(Type.String({ format: 'uuid' })),
          to: Type.Optional(PhoneNumberInput),
          ...PageQuery,
        },
        { additionalProperties: false },
      ),
      response: { 200: Page(Type.Ref('Call')), ...problems(401, 403, 422) },
    },
    handler: async (request) =>
      alarms.listCalls({ ...request.query, to: request.query.to === undefined ? undefined : devices.msisdnOf('querystring.to', request.query.to) }),
  });
};
