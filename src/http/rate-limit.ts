/**
 * Per-key rate limiting of the two intakes a remote system calls on its own (device events from
 * the smart-home system, call reports from the TAS). A route opts in with
 * `config: { limitPerKey: true }`; the limit is RATE_LIMIT_PER_KEY requests per second per API key
 * and route, counted in this gateway instance, checked after authentication (so it is keyed by the
 * key, never by an address a flood could vary). Over it: 429 problem+json with `Retry-After`.
 * 0 turns it off.
 */
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import { ApiProblem } from './problems.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Counted against RATE_LIMIT_PER_KEY. */
    limitPerKey?: boolean;
  }
}

export async function installRateLimit(app: FastifyInstance, perSecond: number): Promise<void> {
  if (perSecond === 0) return;
  // Runs before the plugin's own onRoute hook: turns the route's flag into the plugin's settings.
  app.addHook('onRoute', (route) => {
    if (route.config?.limitPerKey) route.config = { ...route.config, rateLimit: { max: perSecond, timeWindow: 1000 } };
  });
  await app.register(rateLimit, {
    global: false,
    hook: 'preHandler',
    keyGenerator: (request) => {
      const principal = request.principal;
      return principal ? `key:${principal.keyId ?? principal.name}` : `ip:${request.ip}`;
    },
    errorResponseBuilder: (_request, context) =>
      new ApiProblem('rate_limited', `This API key sent more than ${context.max} requests in a second to this route; retry after ${context.after}.`),
  });
}
