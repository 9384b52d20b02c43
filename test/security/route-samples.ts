/**
 * One valid request per route, built on fresh fixtures: what a caller with the right role sends
 * and gets a 2xx for. The authorization matrix looks every route of `app.routeTable` up here, so
 * a new route without a sample fails the matrix with a message saying to add one.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync } from 'node:fs';
import type { InjectOptions } from 'fastify';
import { ADMIN_KEY, type TestApp } from '../support/app.js';

export interface Sample {
  url: string;
  payload?: object;
}

type SampleBuilder = (fixtures: Fixtures) => Promise<Sample>;

/** Creates what a request needs, with the admin key, a fresh one each call. */
export class Fixtures {
  #n = 0;
  constructor(private readonly t: TestApp) {}

  unique(prefix: string): string {
    return `${prefix}-${++this.#n}-${randomUUID().slice(0, 8)}`;
  }

  async #admin(options: InjectOptions): Promise<Record<string, unknown>> {
    const response = await this.t.request({ ...options, key: ADMIN_KEY });
    if (response.statusCode >= 300) throw new Error(`fixture ${String(options.method)} ${JSON.stringify(options.url)}: ${response.statusCode} ${response.body}`);
    return response.json();
  }

  async sensor(): Promise<string> {
    const deviceId = this.unique('sensor');
    await this.#admin({ method: 'POST', url: '/api/v1/devices', payload: { device_id: deviceId, type: 'sensor_smoke', msisdn: '+79161234567' } });
    return deviceId;
  }

  async speaker(): Promise<string> {
    const deviceId = this.unique('speaker');
    await this.#admin({ method: 'POST', url: '/api/v1/devices', payload: { device_id: deviceId, type: 'speaker', msisdn: '+79161234567', endpoint: 'http://127.0.0.1:9/notify' } });
    return deviceId;
  }

  async rule(deviceId?: string): Promise<number> {
    const sensor = deviceId ?? (await this.sensor());
    const rule = await this.#admin({
      method: 'POST',
      url: '/api/v1/rules',
      // 5550106 rings until hung up: the alarm stays active while the matrix runs.
      payload: { name: 'matrix rule', event_type: 'smoke', device_id: sensor, action: { type: 'call', to: ['+79165550106'], message: 'Smoke in the hall' } },
    });
    return rule.id as number;
  }

  async activeAlarm(): Promise<string> {
    const sensor = await this.sensor();
    await this.rule(sensor);
    const outcome = await this.#admin({ method: 'POST', url: '/api/v1/webhooks/events', payload: { event_id: this.unique('evt'), device_id: sensor, event_type: 'smoke' } });
    return (outcome.alarm_ids as string[])[0]!;
  }

  async incomingCall(): Promise<string> {
    const callId = this.unique('call');
    await this.#admin({ method: 'POST', url: '/api/v1/incoming-calls', payload: { call_id: callId, caller: '+74951234567', callee: '+79169990000' } });
    return callId;
  }

  async apiKeyId(): Promise<number> {
    const created = await this.#admin({ method: 'POST', url: '/api/v1/api-keys', payload: { role: 'webhook', name: 'matrix' } });
    return created.id as number;
  }
}

const samples: Record<string, SampleBuilder> = {
  'GET /': async () => ({ url: '/' }),
  'GET /healthz': async () => ({ url: '/healthz' }),
  'GET /readyz': async () => ({ url: '/readyz' }),
  'GET /openapi.json': async () => ({ url: '/openapi.json' }),
  'GET /docs': async () => ({ url: '/docs' }),
  'GET /docs/': async () => ({ url: '/docs/' }),
  'GET /docs/json': async () => ({ url: '/docs/json' }),
  'GET /docs/yaml': async () => ({ url: '/docs/yaml' }),
  'GET /docs/static/index.html': async () => ({ url: '/docs/static/index.html' }),
  'GET /docs/static/swagger-initializer.js': async () => ({ url: '/docs/static/swagger-initializer.js' }),
  'GET /docs/static/*': async () => ({ url: '/docs/static/swagger-ui.css' }),

  'POST /api/v1/api-keys': async () => ({ url: '/api/v1/api-keys', payload: { role: 'telephony', name: 'matrix' } }),
  'GET /api/v1/api-keys': async () => ({ url: '/api/v1/api-keys' }),
  'DELETE /api/v1/api-keys/:id': async (f) => ({ url: `/api/v1/api-keys/${await f.apiKeyId()}` }),

  'POST /api/v1/devices': async (f) => ({ url: '/api/v1/devices', payload: { device_id: f.unique('new'), type: 'sensor_smoke', msisdn: '8 916 123-45-67' } }),
  'GET /api/v1/devices': async () => ({ url: '/api/v1/devices?type=speaker&limit=5' }),
  'GET /api/v1/devices/:device_id': async (f) => ({ url: `/api/v1/devices/${await f.sensor()}` }),
  'PATCH /api/v1/devices/:device_id': async (f) => ({ url: `/api/v1/devices/${await f.sensor()}`, payload: { name: 'Hall' } }),
  'DELETE /api/v1/devices/:device_id': async (f) => ({ url: `/api/v1/devices/${await f.sensor()}` }),
  'POST /api/v1/devices/:device_id/rotate-secret': async (f) => ({ url: `/api/v1/devices/${await f.speaker()}/rotate-secret` }),

  'POST /api/v1/rules': async (f) => ({
    url: '/api/v1/rules',
    payload: { name: 'new rule', event_type: 'smoke', device_id: await f.sensor(), action: { type: 'call', to: ['+79161234567'], message: 'Smoke' } },
  }),
  'GET /api/v1/rules': async () => ({ url: '/api/v1/rules?event_type=smoke' }),
  'GET /api/v1/rules/:id': async (f) => ({ url: `/api/v1/rules/${await f.rule()}` }),
  'PATCH /api/v1/rules/:id': async (f) => ({ url: `/api/v1/rules/${await f.rule()}`, payload: { enabled: false } }),
  'DELETE /api/v1/rules/:id': async (f) => ({ url: `/api/v1/rules/${await f.rule()}` }),

  'POST /api/v1/webhooks/events': async (f) => ({ url: '/api/v1/webhooks/events', payload: { event_id: f.unique('evt'), device_id: await f.sensor(), event_type: 'test' } }),

  'GET /api/v1/alarms': async () => ({ url: '/api/v1/alarms?status=active' }),
  'GET /api/v1/alarms/:id': async (f) => ({ url: `/api/v1/alarms/${await f.activeAlarm()}` }),
  'POST /api/v1/alarms/:id/cancel': async (f) => ({ url: `/api/v1/alarms/${await f.activeAlarm()}/cancel` }),
  'GET /api/v1/calls': async () => ({ url: '/api/v1/calls?limit=3' }),

  'POST /api/v1/incoming-calls': async (f) => ({ url: '/api/v1/incoming-calls', payload: { call_id: f.unique('call'), caller: '+74951234567', callee: '+79169990000' } }),
  'GET /api/v1/incoming-calls': async () => ({ url: '/api/v1/incoming-calls' }),
  'GET /api/v1/incoming-calls/:call_id': async (f) => ({ url: `/api/v1/incoming-calls/${await f.incomingCall()}` }),

  'GET /api/v1/event-logs': async () => ({ url: '/api/v1/event-logs?type=device.*' }),
  // An event stream never ends: the matrix reads its status and headers, then hangs up.
  'GET /api/v1/event-logs/stream': async () => ({ url: '/api/v1/event-logs/stream?type=device.*' }),

  'GET /metrics': async () => ({ url: '/metrics' }),
  'GET /console': async () => ({ url: '/console' }),
  'GET /console/': async () => ({ url: '/console/' }),
  // One of the built console's files (npm ci builds it).
  'GET /console/*': async () => ({ url: `/console/assets/${readdirSync(new URL('../../console/dist/assets/', import.meta.url))[0]}` }),
};

/** The sample request of a route (a HEAD route uses its GET's); undefined when none is written yet. */
export function sampleFor(method: string, url: string): SampleBuilder | undefined {
  return samples[`${method === 'HEAD' ? 'GET' : method} ${url}`];
}
