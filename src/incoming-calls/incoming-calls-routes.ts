import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Page, PageQuery } from '../http/pagination.js';
import { Nullable, parseTimestampParameter, PhoneNumberInput, problems, StringEnum, Timestamp } from '../http/schemas.js';
import { correlate } from '../http/request-log.js';
import { traceOf } from '../http/trace.js';
import { callStates, notificationStatuses, type IncomingCallsService } from './incoming-calls-service.js';

const CallId = Type.String({
  minLength: 1,
  maxLength: 200,
  pattern: '^[\\x21-\\x7e]+$',
  description: "The TAS's id of the call (the SIP Call-ID does): printable ASCII without spaces.",
  examples: ['a84b4c76e66710@pc33.example.com'],
});


const ReportBody = Type.Object(
  {
    call_id: CallId,
    caller: Type.String({ minLength: 1, maxLength: 64, pattern: '^[\\x20-\\x7e]+$', description: 'The calling number (stored E.164 when it reads as one), or e.g. `anonymous`.' }),
    callee: { ...PhoneNumberInput, description: "The subscriber's number (MSISDN), any common spelling." },
    state: Type.Optional(StringEnum(callStates, { default: 'ringing', description: 'One URL serves the whole call: `ringing` (default), then `answered`, `ended`.' })),
    caller_name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'Display name of the caller.' })),
  },
  { additionalProperties: false },
);

const Reported = Type.Object({
  call_id: Type.String(),
  state: StringEnum(callStates, { description: 'The state of the call now (a late earlier state does not move it back).' }),
  notified_devices: Type.Integer({ description: 'Speakers to be notified of this state (delivery happens after this answer).' }),
});

const callFields = {
  call_id: Type.String(),
  caller: Type.String(),
  caller_name: Nullable(Type.String()),
  callee: Type.String(),
  state: StringEnum(callStates),
  source: StringEnum(['api', 'freeswitch'] as const),
  correlation_id: Type.String(),
  received_at: Timestamp,
  ringing_at: Nullable(Timestamp),
  answered_at: Nullable(Timestamp),
  ended_at: Nullable(Timestamp),
};
const Notification = Type.Object({
  id: Type.String({ format: 'uuid', description: 'Also the webhook-id the speaker receives.' }),
  device_id: Type.String(),
  type: Type.String(),
  status: StringEnum(notificationStatuses),
  attempts: Type.Integer(),
  created_at: Timestamp,
  delivered_at: Nullable(Timestamp),
  latency_ms: Nullable(Type.Integer({ description: 'From the report to the speaker answering 2xx (or the broker acknowledging).' })),
  last_error: Nullable(Type.String()),
  expires_at: Timestamp,
});
const Delivery = Type.Object({
  device_id: Type.String(),
  type: Type.String(),
  status: StringEnum(notificationStatuses),
  latency_ms: Nullable(Type.Integer()),
});
const ListedIncomingCall = Type.Object({
  ...callFields,
  deliveries: Type.Array(Delivery, { description: 'Each speaker notification of the call in short (the call itself has the details).' }),
});
const IncomingCallWithNotifications = Type.Object({ ...callFields, notifications: Type.Array(Notification) });

export const incomingCallsRoutes: FastifyPluginAsyncTypebox<{ incomingCalls: IncomingCallsService }> = async (app, { incomingCalls }) => {
  app.post('/incoming-calls', {
    config: { allow: ['telephony', 'admin'], limitPerKey: true },
    schema: {
      tags: ['incoming calls'],
      summary: 'Report (or simulate) a call to a subscriber: ringing, answered, ended',
      description:
        'Answers 202 once the state and the notifications it causes are committed, without waiting for delivery. Repeating a state is harmless; states only move forward.',
      body: ReportBody,
      response: { 202: Reported, ...problems(401, 403, 409, 413, 415, 422, 429) },
    },
    handler: async (request, reply) => {
      const { correlationId, ...outcome } = await incomingCalls.report(request.body, traceOf(request));
      correlate(request, correlationId);
      return reply.code(202).send(outcome);
    },
  });

  app.get('/incoming-calls', {
    config: { allow: ['admin'] },
    schema: {
      tags: ['incoming calls'],
      summary: 'Recent incoming calls, newest first, with the delivery status and latency of each speaker notification',
      querystring: Type.Object(
        { msisdn: Type.Optional(PhoneNumberInput), since: Type.Optional(Type.String({ format: 'date-time' })), ...PageQuery },
        { additionalProperties: false },
      ),
      response: { 200: Page(ListedIncomingCall), ...problems(401, 403, 422) },
    },
    handler: async (request) =>
      incomingCalls.list({ ...request.query, since: parseTimestampParameter('querystring.since', request.query.since) }),
  });

  app.get('/incoming-calls/:call_id', {
    config: { allow: ['admin'] },
    schema: {
      tags: ['incoming calls'],
      summary: 'An incoming call with the delivery status of each speaker notification',
      params: Type.Object({ call_id: CallId }, { additionalProperties: false }),
      response: { 200: IncomingCallWithNotifications, ...problems(401, 403, 404, 422) },
    },
    handler: async (request) => incomingCalls.get(request.params.call_id),
  });
};
