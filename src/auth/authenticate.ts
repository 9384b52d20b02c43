/**
 * Every route declares who may call it: `config: { allow: [roles...] }`, or `config: { public: true }`
 * for health and docs. A route that declares neither fails at start-up, so no route is ever left
 * open by accident. Keys come as `X-API-Key: <key>` or `Authorization: Bearer <key>`. Every route
 * is also listed in `app.routeTable` (method, url, who may call it), from which the security
 * tests generate their authorization matrix and fuzz targets, so a new route cannot be left out.
 */
import type { FastifyInstance, FastifyRequest, FastifySchema } from 'fastify';
import type { ApiKeyService } from '../api-keys/api-keys-service.js';
import { appendEvent } from '../event-log/event-log.js';
import { sendProblem } from '../http/error-handler.js';
import type { Db } from '../storage/database.js';
import { RejectionSampler, type SamplerOptions } from './rejection-sampler.js';
import type { Principal, Role } from './roles.js';

/** One route as the authentication saw it declared. */
export interface RouteEntry {
  method: string;
  url: string;
  /** Roles allowed; empty for a public route. */
  allow: readonly Role[];
  public: boolean;
  schema: FastifySchema | undefined;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Roles allowed to call the route. */
    allow?: readonly Role[];
    /** Served without a key (health, docs). */
    public?: boolean;
    /**
     * A credential of the route's own, accepted instead of an API key of an allowed role (the
     * metrics scrape token). Must compare in constant time.
     */
    acceptCredential?: (request: FastifyRequest) => boolean;
  }
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Every route of the app with who may call it, in the order they were added. */
    routeTable: RouteEntry[];
  }
}

export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header.length > 0) return header.trim();
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  return undefined;
}

export function installAuthentication(
  app: FastifyInstance,
  deps: {
    apiKeys: ApiKeyService;
    db: Db;
    /** Routes under these prefixes (docs) are public. */
    publicPrefixes: string[];
    /** How refusals are sampled into the event log (tests shorten the window). */
    rejectionSampling?: Partial<SamplerOptions>;
  },
): void {
  app.decorateRequest('principal', null);
  const routeTable: RouteEntry[] = [];
  app.decorate('routeTable', routeTable);
  const sampler = new RejectionSampler(deps.rejectionSampling);

  app.addHook('onRoute', (route) => {
    const config = route.config;
    const isPublic = deps.publicPrefixes.some((prefix) => route.url.startsWith(prefix)) || config?.public === true;
    if (!isPublic && !(config?.allow && config.allow.length > 0)) {
      throw new Error(`Route ${String(route.method)} ${route.url} declares neither config.allow nor config.public`);
    }
    for (const method of [route.method].flat()) {
      routeTable.push({ method, url: route.url, allow: isPublic ? [] : config!.allow!, public: isPublic, schema: route.schema });
    }
  });

  app.addHook('onRequest', async (request, reply) => {
    const config = request.routeOptions.config;
    if (config.public || !config.allow) return; // public, or the not-found handler
    if (config.acceptCredential?.(request)) return;
    const key = presentedKey(request);
    const principal = key ? await deps.apiKeys.authenticate(key) : null;
    if (!principal) {
      const reason = key ? 'invalid_key' : 'missing_key';
      await recordRejection(request, deps.db, sampler, `${reason}:${request.ip}`, 'auth.rejected', { reason });
      return sendProblem(
        request,
        reply.header('www-authenticate', 'Bearer realm="tas-iot-gateway"'),
        'unauthorized',
        key ? 'The API key is not valid or has been revoked.' : 'Send an API key as X-API-Key: <key> or Authorization: Bearer <key>.',
      );
    }
    if (!config.allow.includes(principal.role)) {
      await recordRejection(request, deps.db, sampler, `forbidden:${principal.keyId ?? principal.name}`, 'auth.forbidden', { reason: 'role_not_allowed', role: principal.role, api_key_id: principal.keyId, allowed: config.allow });
      return sendProblem(request, reply, 'forbidden', `This route needs the role ${config.allow.join(' or ')}; the key has the role ${principal.role}.`);
    }
    request.principal = principal;
  });
}

/** Writes a refusal to the event log, sampled per client so a flood cannot fill the table. */
async function recordRejection(
  request: FastifyRequest,
  db: Db,
  sampler: RejectionSampler,
  client: string,
  type: string,
  details: Record<string, unknown>,
): Promise<void> {
  const admission = sampler.admit(client);
  if (!admission.write) return;
  if (admission.unloggedBefore > 0) details = { ...details, unlogged_before: admission.unloggedBefore };
  try {
    await appendEvent(db, {
      type,
      status: 'rejected',
      correlationId: request.id,
      requestId: request.id,
      details: { ...details, method: request.method, route: request.routeOptions.url, ip: request.ip },
    });
  } catch (error) {
    // The refusal stands whether or not it could be logged; say so in the process log.
    request.log.error({ err: error, type }, 'could not write the rejection to the event log');
  }
}
