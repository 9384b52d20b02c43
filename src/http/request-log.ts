/**
 * One JSON line when a request arrives and one when it is answered, both with the request id
 * (`reqId`); the answer's line also names the route pattern and the correlation id of the story
 * the request belongs to (its own request id, or, for a duplicate event or a later report of the
 * same call, the id of the request that started the story), so one `grep` on a correlation id
 * finds the requests along with the domain steps (see logSteps in src/event-log/event-log.ts).
 */
import { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

declare module 'fastify' {
  interface FastifyRequest {
    /** The story this request belongs to; null until a handler says (then it is the request id). */
    correlationId: string | null;
  }
}

export class GatewayLogController extends LogController {
  override incomingRequest(request: FastifyRequest): void {
    if (this.isLogDisabled(request)) return;
    request.log.info({ req: request }, 'request received');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return;
    const line = {
      res: reply,
      responseTime: reply.elapsedTime,
      route: request.routeOptions.url ?? null,
      correlationId: request.correlationId ?? request.id,
    };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request answered');
  }
}

export function installRequestCorrelation(app: FastifyInstance): void {
  app.decorateRequest('correlationId', null);
}

/** Says which story the request belongs to (its answer's log line carries it). */
export function correlate(request: FastifyRequest, correlationId: string): void {
  request.correlationId = correlationId;
}
