/**
 * `GET /event-logs/stream`: the event log as it happens, as server-sent events. Each event's `id`
 * is the row id, so a client that reconnects with `Last-Event-ID` (or `?last_event_id=`, for
 * EventSource reconnects that cannot set headers) gets what it missed from the table first, then
 * the live rows. A client too slow to read is disconnected rather than buffered without bound;
 * it reconnects with its last id and loses nothing.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { invalidField } from '../http/problems.js';
import { problems } from '../http/schemas.js';
import type { DevicesService } from '../devices/devices-service.js';
import type { Db } from '../storage/database.js';
import type { EventLogRow } from '../storage/schema.js';
import type { EventLogFeed } from './event-log-feed.js';
import { EventFilterQuery, presentEvent } from './event-log-routes.js';
import { eventMatches, findEventsBetween, type EventMatch } from './event-log-queries.js';

export interface StreamOptions {
  heartbeatMs: number;
  /** Bytes written but not yet taken by the client before it is disconnected. */
  maxBufferedBytes: number;
  /** Rows read per query while catching up. */
  catchUpBatch: number;
}

const defaults: StreamOptions = { heartbeatMs: 15_000, maxBufferedBytes: 1 << 20, catchUpBatch: 500 };

const StreamQuery = Type.Object(
  {
    ...EventFilterQuery,
    last_event_id: Type.Optional(
      Type.String({ pattern: '^[0-9]{1,15}$', description: 'Resume after this row id (the `Last-Event-ID` header wins when both are sent).' }),
    ),
  },
  { additionalProperties: false },
);

function lastEventIdOf(header: string | string[] | undefined, query: string | undefined): number | undefined {
  const text = typeof header === 'string' && header.trim() !== '' ? header.trim() : query;
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,15}$/.test(text)) throw invalidField('headers.last-event-id', 'must be the id of an event this stream sent');
  return Number(text);
}

function frame(row: EventLogRow): string {
  // JSON.stringify escapes newlines, so one data line holds the whole row.
  return `id: ${row.id}\ndata: ${JSON.stringify(presentEvent(row))}\n\n`;
}

export const eventLogStreamRoutes: FastifyPluginAsyncTypebox<{ db: Db; devices: DevicesService; feed: EventLogFeed; options?: Partial<StreamOptions> }> = async (
  app,
  { db, devices, feed, options: given },
) => {
  const options = { ...defaults, ...given };

  app.get('/event-logs/stream', {
    config: { allow: ['admin'] },
    schema: {
      tags: ['event-log'],
      summary: 'The event log as it happens (server-sent events)',
      description:
        'text/event-stream: one `data:` line per row (the same JSON as the list), `id:` the row id, oldest first; a `:` comment line every 15 s keeps it open. ' +
        'Filters as in the list. Resume with the `Last-Event-ID` header or `last_event_id`: the rows after it come first. Without either, only rows written from now on.',
      querystring: StreamQuery,
      response: {
        200: { description: 'An endless stream of server-sent events', content: { 'text/event-stream': { schema: Type.String() } } },
        ...problems(401, 403, 422),
      },
    },
    handler: async (request, reply) => {
      const query = request.query;
      const filter: EventMatch = {
        type: query.type,
        deviceId: query.device_id,
        msisdn: query.msisdn === undefined ? undefined : devices.msisdnOf('querystring.msisdn', query.msisdn),
        correlationId: query.correlation_id,
      };
      const resumeAfter = lastEventIdOf(request.headers['last-event-id'], query.last_event_id);

      const raw = reply.raw;
      let closed = false;
      let catchingUp = resumeAfter !== undefined;
      const heldWhileCatchingUp: EventLogRow[] = [];
      const sentWhileCatchingUp = new Set<number>();
      let heartbeat: NodeJS.Timeout | undefined = undefined;
      let unsubscribe = (): void => {};

      const finish = (): void => {
        if (closed) return;
        closed = true;
        if (heartbeat) clearInterval(heartbeat);
        unsubscribe();
        raw.end();
      };
      const write = (text: string): void => {
        if (closed) return;
        raw.write(text);
        if (raw.writableLength > options.maxBufferedBytes) {
          request.log.warn({ buffered: raw.writableLength }, 'event-log stream client too slow; disconnected (it resumes with Last-Event-ID)');
          closed = true;
          if (heartbeat) clearInterval(heartbeat);
          unsubscribe();
          raw.destroy();
        }
      };
      const send = (rows: EventLogRow[]): void => {
        for (const row of rows) if (eventMatches(row, filter)) write(frame(row));
      };

      const subscription = await feed.subscribe({
        deliver: (rows) => {
          if (catchingUp) heldWhileCatchingUp.push(...rows);
          else send(rows);
        },
        end: finish,
      });
      unsubscribe = subscription.unsubscribe;
      raw.on('close', finish);

      reply.hijack();
      raw.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
        'x-request-id': request.id,
      });
      raw.flushHeaders();
      write(`retry: 2000\n: streaming the event log from id ${resumeAfter ?? subscription.watermark}\n\n`);
      heartbeat = setInterval(() => write(': keep-alive\n\n'), options.heartbeatMs);
      heartbeat.unref();

      if (resumeAfter !== undefined) {
        try {
          let after = resumeAfter;
          while (!closed) {
            const rows = await findEventsBetween(db, filter, after, subscription.watermark, options.catchUpBatch);
            for (const row of rows) sentWhileCatchingUp.add(row.id);
            send(rows);
            if (rows.length < options.catchUpBatch) break;
            after = rows[rows.length - 1]!.id;
            // Let the client take what was written before reading more.
            if (raw.writableNeedDrain) await new Promise((resolve) => raw.once('drain', resolve));
          }
        } catch (error) {
          request.log.error({ err: error }, 'could not catch up the event-log stream');
          finish();
          return;
        }
        catchingUp = false;
        send(heldWhileCatchingUp.filter((row) => !sentWhileCatchingUp.has(row.id)));
        heldWhileCatchingUp.length = 0;
        sentWhileCatchingUp.clear();
      }
    },
  });
};
