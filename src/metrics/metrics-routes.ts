/**
 * `GET /metrics`: the Prometheus exposition. Readable with an admin API key, or, when METRICS_TOKEN
 * is set, with `Authorization: Bearer <METRICS_TOKEN>` (so a scraper needs no admin key).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { problems } from '../http/schemas.js';
import type { GatewayMetrics } from './metrics.js';

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Accepts `Authorization: Bearer <token>` for exactly this token, compared in constant time. */
export function bearerTokenCheck(token: string): (request: FastifyRequest) => boolean {
  const expected = digest(token);
  return (request) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    return match !== null && timingSafeEqual(digest(match[1]!), expected);
  };
}

export const metricsRoutes: FastifyPluginAsyncTypebox<{ metrics: GatewayMetrics; token?: string | undefined }> = async (app, { metrics, token }) => {
  app.get('/metrics', {
    config: { allow: ['admin'], ...(token ? { acceptCredential: bearerTokenCheck(token) } : {}) },
    schema: {
      tags: ['operations'],
      summary: 'Metrics in the Prometheus text format',
      description:
        'Counters, histograms and gauges of this instance (docs/operations.md lists them with the alerts to set). Needs an admin API key, or `Authorization: Bearer <METRICS_TOKEN>` when that is configured.',
      response: {
        200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: Type.String() } } },
        ...problems(401, 403),
      },
    },
    handler: async (_request, reply) => reply.type(metrics.contentType).send(await metrics.exposition()),
  });
};
