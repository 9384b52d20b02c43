import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Page } from '../http/pagination.js';
import { problems } from '../http/schemas.js';
import { traceOf } from '../http/trace.js';
import {
  CreateDeviceBody,
  DeviceListQuery,
  DeviceParams,
  DeviceWithSecret,
  SecretRotated,
  UpdateDeviceBody,
} from './devices-schemas.js';
import { presentDevice, type DevicesService } from './devices-service.js';

const adminOnly = { allow: ['admin'] } as const;
const tags = ['devices'];

export const devicesRoutes: FastifyPluginAsyncTypebox<{ devices: DevicesService }> = async (app, { devices }) => {
  app.post('/devices', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'Register a device',
      description: 'A speaker gets a Standard Webhooks signing secret, returned only in this response.',
      body: CreateDeviceBody,
      response: { 201: DeviceWithSecret, ...problems(401, 403, 409, 413, 415, 422) },
    },
    handler: async (request, reply) => {
      const { device, signingSecret } = await devices.create(request.body, traceOf(request));
      return reply
        .code(201)
        .header('location', `/api/v1/devices/${encodeURIComponent(device.device_id)}`)
        .send({ ...presentDevice(device), ...(signingSecret ? { signing_secret: signingSecret } : {}) });
    },
  });

  app.get('/devices', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'List devices',
      description: 'In registration order, filtered by type and/or number (any spelling; matched in E.164).',
      querystring: DeviceListQuery,
      response: { 200: Page(Type.Ref('Device')), ...problems(401, 403, 422) },
    },
    handler: async (request) => devices.list(request.query),
  });

  app.get('/devices/:device_id', {
    config: adminOnly,
    schema: { tags, summary: 'Get a device', params: DeviceParams, response: { 200: Type.Ref('Device'), ...problems(401, 403, 404, 422) } },
    handler: async (request) => presentDevice(await devices.get(request.params.device_id)),
  });

  app.patch('/devices/:device_id', {
    config: adminOnly,
    schema: {
      tags,
      summary: 'Change a device',
      params: DeviceParams,
      body: UpdateDeviceBody,
      response: { 200: Type.Ref('Device'), ...problems(401, 403, 404, 413, 415, 422) },
    },
    handler: async (request) => presentDevice(await devices.update(request.params.device_id, request.body, traceOf(request))),
  });

  app.delete('/devices/:device_id', {
    config: adminOnly,
    schema: { tags, summary: 'Remove a device', params: DeviceParams, response: { 204: Type.Null(), ...problems(401, 403, 404, 422) } },
    handler: async (request, reply) => {
      await devices.remove(request.params.device_id, traceOf(request));
      return reply.code(204).send(null);
    },
  });

  app.post('/devices/:device_id/rotate-secret', {
    config: adminOnly,
    schema: {
      tags,
      summary: "Issue a new signing secret for a speaker",
      params: DeviceParams,
      response: { 200: SecretRotated, ...problems(401, 403, 404, 409, 422) },
    },
    handler: async (request) => ({
      device_id: request.params.device_id,
      signing_secret: await devices.rotateSecret(request.params.device_id, traceOf(request)),
    }),
  });
};
