import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { DeviceId } from '../devices/devices-schemas.js';
import { deviceEventTypes } from '../devices/device-types.js';
import { problems, StringEnum } from '../http/schemas.js';
import { traceOf } from '../http/trace.js';
import { appendEvent, logSteps, type EventLogEntry } from '../event-log/event-log.js';
import { correlate } from '../http/request-log.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { sendProblem } from '../http/error-handler.js';
import type { Db } from '../storage/database.js';
import type { DeviceEventsService } from './device-events-service.js';
import { verifySignature, type SignedMessage, type Webhook } from './webhook-signature.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified Standard Webhooks message (when signatures are required). */
    signedMessage: SignedMessage | null;
  }
}

/** The webhook body; exported for the bench baseline, which validates the same schema. */
export const DeviceEventBody = Type.Object(
  {
    event_id: Type.String({
      minLength: 1,
      maxLength: 200,
      pattern: '^[\\x21-\\x7e]+$',
      description: "The sender's unique id of this event. Sending it again is safe: the first outcome is returned.",
      examples: ['evt-2026-11-27-0001'],
    }),
    device_id: DeviceId,
    event_type: StringEnum(deviceEventTypes, { description: 'What happened: `smoke`, `smoke_cleared` (ends the smoke alarm), `test`.' }),
    occurred_at: Type.Optional(Type.String({ format: 'date-time', description: 'When the device saw it.' })),
    data: Type.Optional(Type.Unsafe<Record<string, unknown>>({ type: 'object', maxProperties: 100, description: 'Whatever else the device reported.' })),
  },
  { additionalProperties: false },
);

const Accepted = Type.Object({
  event_id: Type.String(),
  status: StringEnum(['accepted', 'duplicate'] as const, { description: '`duplicate`: this event_id was received before; nothing new was started.' }),
  matched_rules: Type.Integer(),
  alarm_ids: Type.Array(Type.String({ format: 'uuid' }), { description: 'Alarms this event started.' }),
  suppressed: Type.Integer({ description: 'Matched rules that started nothing (an alarm already active, or inside the cooldown).' }),
  canceled_alarm_ids: Type.Array(Type.String({ format: 'uuid' }), { description: 'Alarms this event ended (e.g. smoke_cleared).' }),
});

export const deviceEventsRoutes: FastifyPluginAsyncTypebox<{ deviceEvents: DeviceEventsService; db: Db; signatures?: Webhook | undefined; metrics: GatewayMetrics }> = async (
  app,
  { deviceEvents, db, signatures, metrics },
) => {
  app.decorateRequest('signedMessage', null);
  app.post('/webhooks/events', {
    config: { allow: ['webhook', 'admin'], limitPerKey: true },
    ...(signatures
      ? {
          preHandler: async (request: FastifyRequest, reply: FastifyReply) => {
            const check = verifySignature(signatures, request);
            if (check.ok) {
              request.signedMessage = check.message;
              return;
            }
            const entry: EventLogEntry = {
              type: 'event.rejected',
              status: 'rejected',
              correlationId: request.id,
              requestId: request.id,
              details: { reason: 'invalid signature', detail: check.reason, ip: request.ip },
            };
            await appendEvent(db, entry);
            logSteps(request.log, [entry]);
            metrics.deviceEvent((request.body as { event_type: string }).event_type, 'rejected');
            return sendProblem(request, reply, 'invalid_signature', `Webhook signature check failed: ${check.reason}.`);
          },
        }
      : {}),
    schema: {
      tags: ['device events'],
      summary: 'Report a device event (the smart-home webhook)',
      description:
        'Answers 202 only after the event, its log rows and the work it causes (alarms and their first calls) are committed. The same event_id again returns the first outcome with status `duplicate`. With signatures required, a message whose webhook-id was accepted before is a replay: 409 `webhook_replayed`.',
      body: DeviceEventBody,
      response: { 202: Accepted, ...problems(401, 403, 404, 409, 413, 415, 422, 429) },
    },
    handler: async (request, reply) => {
      const { correlationId, ...outcome } = await deviceEvents.receive(request.body, traceOf(request), request.signedMessage ?? undefined);
      correlate(request, correlationId);
      return reply.code(202).send(outcome);
    },
  });
};
