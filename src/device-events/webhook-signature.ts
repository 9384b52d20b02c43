/**
 * Optional Standard Webhooks verification of device events: with WEBHOOK_SIGNING_SECRET set, the
 * smart-home system signs each request body (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature`), and a request whose signature does not match, or whose timestamp is more
 * than five minutes off, is refused before anything is recorded. The intake keeps each accepted
 * message's webhook-id (webhook_messages) while a replay of it could still pass the timestamp check,
 * and refuses a message whose id it has seen.
 */
import type { FastifyRequest } from 'fastify';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';

/** How far a signed timestamp may be from now, either way (the Standard Webhooks library's tolerance). */
export const SIGNATURE_TOLERANCE_MS = 5 * 60_000;

/** A webhook-id this gateway keeps to refuse replays: printable ASCII, bounded. */
const webhookIdPattern = /^[\x21-\x7e]{1,256}$/;

/** A verified message: its id and signed timestamp, which the intake keeps to refuse a replay. */
export interface SignedMessage {
  id: string;
  timestamp: Date;
}

export type SignatureCheck = { ok: true; message: SignedMessage } | { ok: false; reason: string };

export function verifySignature(webhook: Webhook, request: FastifyRequest): SignatureCheck {
  const header = (name: string) => {
    const value = request.headers[name];
    return typeof value === 'string' ? value : '';
  };
  const headers = { 'webhook-id': header('webhook-id'), 'webhook-timestamp': header('webhook-timestamp'), 'webhook-signature': header('webhook-signature') };
  if (!headers['webhook-id'] || !headers['webhook-timestamp'] || !headers['webhook-signature']) {
    return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature header' };
  }
  if (!webhookIdPattern.test(headers['webhook-id'])) {
    return { ok: false, reason: 'webhook-id must be 1 to 256 printable ASCII characters' };
  }
  if (!/^[0-9]{1,12}$/.test(headers['webhook-timestamp'])) {
    return { ok: false, reason: 'webhook-timestamp must be whole seconds since 1970' };
  }
  try {
    webhook.verify(request.rawBody ?? '', headers);
    return { ok: true, message: { id: headers['webhook-id'], timestamp: new Date(Number(headers['webhook-timestamp']) * 1000) } };
  } catch (error) {
    if (error instanceof WebhookVerificationError) return { ok: false, reason: error.message };
    throw error;
  }
}

export { Webhook };
