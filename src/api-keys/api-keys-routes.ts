import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { roles } from '../auth/roles.js';
import { decodeCursor, Page, PageQuery, toPage } from '../http/pagination.js';
import { problems, StringEnum, Timestamp } from '../http/schemas.js';
import { traceOf } from '../http/trace.js';
import type { ApiKeyRow } from '../storage/schema.js';
import type { ApiKeyService } from './api-keys-service.js';

const adminOnly = { allow: ['admin'] } as const;
const tags = ['api-keys'];

const ApiKey = Type.Object({
  id: Type.Integer(),
  role: StringEnum(roles),
  name: Type.String(),
  key_prefix: Type.String({ description: 'The first characters of the key, to tell keys apart.' }),
  created_at: Timestamp,
  revoked_at: Type.Union([Timestamp, Type.Null()]),
});

const CreatedApiKey = Type.Object({
  ...ApiKey.properties,
  key: Type.String({ description: 'The key. Shown only in this response; only its hash is stored.' }),
});

function presentKey(row: ApiKeyRow) {
  return {
    id: row.id,
    role: row.role as (typeof roles)[number],
    name: row.name,
    key_prefix: row.key_prefix,
    created_at: row.created_at.toISOString(),
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

export const apiKeysRoutes: FastifyPluginAsyncTypebox<{ apiKeys: ApiKeyService }> = async (app, { apiKeys }) => {
  app.post('/api-keys', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'Create an API key',
      description: '`admin` manages everything, `webhook` posts device events, `telephony` reports calls.',
      body: Type.Object(
        { role: StringEnum(roles), name: Type.String({ minLength: 1, maxLength: 200, description: 'Who or what uses the key.' }) },
        { additionalProperties: false },
      ),
      response: { 201: CreatedApiKey, ...problems(401, 403, 413, 415, 422) },
    },
    handler: async (request, reply) => {
      const { row, key } = await apiKeys.create(request.body, traceOf(request));
      return reply.code(201).send({ ...presentKey(row), key });
    },
  });

  app.get('/api-keys', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'List API keys (never the keys themselves)',
      querystring: Type.Object(PageQuery, { additionalProperties: false }),
      response: { 200: Page(ApiKey), ...problems(401, 403, 422) },
    },
    handler: async (request) => {
      const limit = request.query.limit ?? 50;
      const rows = await apiKeys.list(decodeCursor(request.query.cursor), limit);
      return toPage(rows, limit, presentKey);
    },
  });

  app.delete('/api-keys/:id', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'Revoke an API key',
      description: 'Takes effect at once. Revoking the only admin key while ADMIN_API_KEY is unset is refused (409).',
      params: Type.Object({ id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }) }, { additionalProperties: false }),
      response: { 204: Type.Null(), ...problems(401, 403, 404, 409, 422) },
    },
    handler: async (request, reply) => {
      await apiKeys.revoke(request.params.id, traceOf(request));
      return reply.code(204).send(null);
    },
  });
};
