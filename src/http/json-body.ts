/**
 * The one JSON body parser: the bytes must be valid UTF-8 (a body with invalid bytes is refused
 * with 400 instead of being stored with U+FFFD in their place), then Fastify's own parser reads
 * them, keeping its defences (`__proto__` and `constructor.prototype` keys refused or dropped,
 * body size limit). With `keepRaw` the exact text is kept on the request for signature checks.
 */
import type { FastifyInstance } from 'fastify';
import { ApiProblem } from './problems.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received (kept only when webhook signatures are verified). */
    rawBody?: string;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function installJsonBodyParser(app: FastifyInstance, options: { keepRaw: boolean }): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    let text: string;
    try {
      text = strictUtf8.decode(body as Buffer);
    } catch {
      done(new ApiProblem('malformed_json', 'The body is not valid UTF-8.'), undefined);
      return;
    }
    if (options.keepRaw) request.rawBody = text;
    void parse(request, text, done);
  });
}
