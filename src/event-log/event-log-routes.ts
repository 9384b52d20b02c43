import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { decodeCursor, decodeTimeCursor, encodeTimeCursor, Page, PageQuery, toPage } from '../http/pagination.js';
import { parseTimestampParameter, PhoneNumberInput, problems, Timestamp } from '../http/schemas.js';
import type { DevicesService } from '../devices/devices-service.js';
import type { Db } from '../storage/database.js';
import type { EventLogRow } from '../storage/schema.js';
import { findEvents, findEventsInTime } from './event-log-queries.js';

const EventLogItem = Type.Object({
  id: Type.Integer(),
  at: Timestamp,
  type: Type.String({ description: 'Dotted event name, e.g. `device.created`, `auth.rejected`.' }),
  status: Type.String(),
  device_id: Type.Union([Type.String(), Type.Null()]),
  msisdn: Type.Union([Type.String(), Type.Null()]),
  correlation_id: Type.Union([Type.String(), Type.Null()]),
  request_id: Type.Union([Type.String(), Type.Null()]),
  details: Type.Record(Type.String(), Type.Unknown()),
});

/** The filters the list and the live stream share. */
export const EventFilterQuery = {
  type: Type.Optional(
    Type.String({ maxLength: 100, pattern: '^[a-z0-9_]+(\\.[a-z0-9_]+)*(\\.\\*)?$', description: 'Exact type, or a family such as `device.*`.' }),
  ),
  device_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  msisdn: Type.Optional(PhoneNumberInput),
  correlation_id: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
};

const EventLogQuery = Type.Object(
  {
    ...EventFilterQuery,
    since: Type.Optional(Type.String({ format: 'date-time', description: 'Rows at or after this time.' })),
    until: Type.Optional(Type.String({ format: 'date-time', description: 'Rows before this time.' })),
    ...PageQuery,
  },
  { additionalProperties: false },
);

export function presentEvent(row: EventLogRow) {
  return { ...row, at: row.at.toISOString() };
}

export const eventLogRoutes: FastifyPluginAsyncTypebox<{ db: Db; devices: DevicesService }> = async (app, { db, devices }) => {
  app.get('/event-logs', {
    config: { allow: ['admin'] },
    schema: {
      tags: ['event-log'],
      summary: 'Read the event log, newest first (by time when since or until is given)',
      querystring: EventLogQuery,
      response: { 200: Page(EventLogItem), ...problems(401, 403, 422) },
    },
    handler: async (request) => {
      const query = request.query;
      const limit = query.limit ?? 50;
      const match = {
        type: query.type,
        deviceId: query.device_id,
        msisdn: query.msisdn === undefined ? undefined : devices.msisdnOf('querystring.msisdn', query.msisdn),
        correlationId: query.correlation_id,
        limit,
      };
      const since = parseTimestampParameter('querystring.since', query.since);
      const until = parseTimestampParameter('querystring.until', query.until);
      if (since === undefined && until === undefined) {
        return toPage(await findEvents(db, { ...match, beforeId: decodeCursor(query.cursor) }), limit, presentEvent);
      }
      // A time range is read, and paged, in time order (newest first).
      const rows = await findEventsInTime(db, { ...match, since, until, before: decodeTimeCursor(query.cursor) });
      return toPage(rows, limit, ({ at_us: _, ...row }) => presentEvent(row), undefined, (row) => encodeTimeCursor({ atMicros: row.at_us, id: row.id }));
    },
  });
};
