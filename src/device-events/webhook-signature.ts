/**
 * Optional Standard Webhooks verification of device events: with WEBHOOK_SIGNING_SECRET set, the
 * smart-home system signs each request body (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`), and a request whose signature does not match, or whose timestamp is more
 * than five minutes off, is refused before anything is recorded.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received (kept only when webhook signatures are verified). */
    rawBody?: string;
  }
}

/** Keeps the raw JSON text of each request next to the parsed body, for signature checks. */
export function keepRawJsonBodies(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    request.rawBody = text;
    void parse(request, text, done);
  });
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

export function verifySignature(webhook: Webhook, request: FastifyRequest): SignatureCheck {
  const header = (name: string) => {
    const value = request.headers[name];
    return typeof value === 'string' ? value : '';
  };
  const headers = { 'webhook-id': header('webhook-id'), 'webhook-timestamp': header('webhook-timestamp'), 'webhook-signature': header('webhook-signature') };
  if (!headers['webhook-id'] || !headers['webhook-timestamp'] || !headers['webhook-signature']) {
    return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature header' };
  }
  try {
    webhook.verify(request.rawBody ?? '', headers);
    return { ok: true };
  } catch (error) {
    if (error instanceof WebhookVerificationError) return { ok: false, reason: error.message };
    throw error;
  }
}

export { Webhook };
