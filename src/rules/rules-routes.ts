import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { Page } from '../http/pagination.js';
import { problems } from '../http/schemas.js';
import { traceOf } from '../http/trace.js';
import { checkActionType, ruleActionTypes } from './rule-actions.js';
import { CreateRuleBody, RuleListQuery, RuleParams, UpdateRuleBody } from './rules-schemas.js';
import { presentRule, type RulesService } from './rules-service.js';

const adminOnly = { allow: ['admin'] } as const;
const tags = ['rules'];

/** Before the schema: an unknown `action.type` is answered with the types that exist. */
async function knownActionType(request: FastifyRequest): Promise<void> {
  const body = request.body as { action?: unknown } | null | undefined;
  if (body && typeof body === 'object') checkActionType(body.action, 'body.action');
}

export const rulesRoutes: FastifyPluginAsyncTypebox<{ rules: RulesService }> = async (app, { rules }) => {
  app.post('/rules', {
    config: adminOnly,
    preValidation: knownActionType,
    schema: {
      tags,
      summary: 'Create a rule',
      description:
        'On an event of `event_type` from one device (`device_id`) or from any device bound to a number (`msisdn`), perform `action` ' +
        `(one of: ${ruleActionTypes.join(', ')}). The device must be registered and report that event type.`,
      body: CreateRuleBody,
      response: { 201: Type.Ref('Rule'), ...problems(401, 403, 413, 415, 422) },
    },
    handler: async (request, reply) => {
      const rule = await rules.create(request.body, traceOf(request));
      return reply.code(201).header('location', `/api/v1/rules/${rule.id}`).send(presentRule(rule));
    },
  });

  app.get('/rules', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'List rules',
      description: 'In creation order, filtered by event type, device, number (any spelling; matched in E.164) and/or enabled.',
      querystring: RuleListQuery,
      response: { 200: Page(Type.Ref('Rule')), ...problems(401, 403, 422) },
    },
    handler: async (request) => rules.list(request.query),
  });

  app.get('/rules/:id', {
    config: adminOnly,
    schema: { tags, summary: 'Get a rule', params: RuleParams, response: { 200: Type.Ref('Rule'), ...problems(401, 403, 404, 422) } },
    handler: async (request) => presentRule(await rules.get(request.params.id)),
  });

  app.patch('/rules/:id', {
    config: adminOnly,
    preValidation: knownActionType,
    schema: {
      tags,
      summary: 'Change a rule',
      description: 'Alarms already running keep the action they started with.',
      params: RuleParams,
      body: UpdateRuleBody,
      response: { 200: Type.Ref('Rule'), ...problems(401, 403, 404, 413, 415, 422) },
    },
    handler: async (request) => presentRule(await rules.update(request.params.id, request.body, traceOf(request))),
  });

  app.delete('/rules/:id', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'Remove a rule',
      description: 'Alarms the rule started keep running with the action they started with.',
      params: RuleParams,
      response: { 204: Type.Null(), ...problems(401, 403, 404, 422) },
    },
    handler: async (request, reply) => {
      await rules.remove(request.params.id, traceOf(request));
      return reply.code(204).send(null);
    },
  });
};
