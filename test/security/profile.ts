/**
 * The security suite's two profiles, chosen by TEST_PROFILE: `long` (npm run test:security) and
 * the short one CI runs with `npm test`. Also the checks every hostile request's answer must pass.
 */
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';

export const longProfile = process.env.TEST_PROFILE === 'long';
export const profileName = longProfile ? 'long' : 'short';

/** A well-formed answer: a real status, never 5xx, and a 4xx is a complete application/problem+json. */
export function expectWellFormed(response: LightMyRequestResponse, context: string): void {
  const where = `${context} -> ${response.statusCode} ${String(response.headers['content-type'])} ${response.body.slice(0, 300)}`;
  expect(response.statusCode, where).toBeGreaterThanOrEqual(200);
  expect(response.statusCode, where).toBeLessThan(500);
  if (response.statusCode >= 400) expectProblem(response, where);
}

export function expectProblem(response: LightMyRequestResponse, where = ''): Record<string, unknown> {
  expect(response.headers['content-type'], where).toMatch(/^application\/problem\+json/);
  if (response.body === '') {
    // HEAD: the same headers as the GET, without the body.
    expect(response.raw.req.method, where).toBe('HEAD');
    return {};
  }
  const body = JSON.parse(response.body) as Record<string, unknown>;
  expect(body, where).toMatchObject({
    type: expect.stringMatching(/^urn:tas-iot-gateway:problem:[a-z_]+$/),
    title: expect.any(String),
    status: response.statusCode,
    detail: expect.any(String),
    code: expect.stringMatching(/^[a-z_]+$/),
    request_id: expect.any(String),
  });
  return body;
}

/**
 * app.inject that also ends for a route that never does (the live event-log stream): the answer
 * is read as a stream; an event stream is closed once its status and headers are in.
 */
export async function injectBounded(app: FastifyInstance, options: InjectOptions): Promise<LightMyRequestResponse> {
  const response = await app.inject({ ...options, payloadAsStream: true });
  const stream = response.stream();
  let body = '';
  if (String(response.headers['content-type']).startsWith('text/event-stream')) {
    stream.on('error', () => {});
    stream.destroy();
  } else {
    for await (const chunk of stream) body += String(chunk);
  }
  const method = String(options.method ?? 'GET').toUpperCase();
  return Object.create(response, {
    body: { value: body },
    payload: { value: body },
    json: { value: () => JSON.parse(body) as unknown },
    raw: { value: { res: (response.raw as { res?: unknown } | undefined)?.res, req: { method } } },
  }) as LightMyRequestResponse;
}
