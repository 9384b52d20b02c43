import type { FastifyRequest } from 'fastify';
import type { Trace } from '../event-log/event-log.js';

/** The trace of work an HTTP request starts: its request id is the chain's correlation id. */
export function traceOf(request: FastifyRequest): Trace {
  const principal = request.principal;
  return {
    correlationId: request.id,
    requestId: request.id,
    ...(principal ? { actor: principal.keyId === null ? principal.name : `${principal.name} (key ${principal.keyId})` } : {}),
  };
}
