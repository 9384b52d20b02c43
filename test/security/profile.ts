/**
 * The security suite's two profiles, chosen by TEST_PROFILE: `long` (npm run test:security) and
 * the short one CI runs with `npm test`. Also the checks every hostile request's answer must pass.
 */
import type { LightMyRequestResponse } from 'fastify';
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
