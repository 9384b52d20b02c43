/**
 * One attempt to deliver a notification to a speaker's HTTP endpoint: a JSON POST signed as
 * Standard Webhooks (`webhook-id` is the notification id, stable across retries, so the receiver
 * can drop a repeat), through one shared HTTP agent that connects only where the outbound policy
 * allows, follows no redirect, and reads at most a little of the answer.
 */
import { Webhook } from 'standardwebhooks';
import { Agent, request } from 'undici';
import { OutboundBlockedError, type OutboundPolicy } from './outbound-policy.js';

export type DeliveryResult =
  | { outcome: 'delivered'; statusCode?: number }
  | { outcome: 'retry'; reason: string }
  | { outcome: 'failed'; reason: string }
  | { outcome: 'gone'; reason: string };

export interface HttpDeliveryRequest {
  url: string;
  /** The device's Standard Webhooks secret (`whsec_...`). */
  secret: string;
  /** The notification id: the `webhook-id`. */
  messageId: string;
  payload: Record<string, unknown>;
  timeoutMs: number;
  policy: OutboundPolicy;
  /** The time signed into `webhook-timestamp`. */
  now: Date;
}

/** The most of a response body read (and dropped); past it the connection is closed instead. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

const USER_AGENT = 'tas-iot-gateway';

/** One agent per policy (in practice one per process): keep-alive connections are shared by every delivery. */
const agents = new WeakMap<OutboundPolicy, Agent>();

function agentFor(policy: OutboundPolicy): Agent {
  let agent = agents.get(policy);
  if (!agent) {
    agent = new Agent({
      connect: { lookup: policy.lookup, timeout: 10_000 },
      keepAliveTimeout: 10_000,
      keepAliveMaxTimeout: 60_000,
      // No per-origin cap: the dispatcher's concurrency bounds the connections.
      pipelining: 1,
    });
    agents.set(policy, agent);
  }
  return agent;
}

/** Closes the shared agent of a policy (shutdown, tests). */
export async function closeHttpAgent(policy: OutboundPolicy): Promise<void> {
  const agent = agents.get(policy);
  if (!agent) return;
  agents.delete(policy);
  await agent.close().catch(() => agent.destroy());
}

export function classifyStatus(statusCode: number): DeliveryResult {
  if (statusCode >= 200 && statusCode < 300) return { outcome: 'delivered', statusCode };
  if (statusCode === 410) return { outcome: 'gone', reason: 'HTTP 410 Gone' };
  if (statusCode === 408 || statusCode === 429 || (statusCode >= 500 && statusCode < 600)) return { outcome: 'retry', reason: `HTTP ${statusCode}` };
  if (statusCode >= 300 && statusCode < 400) return { outcome: 'failed', reason: `redirect not followed (HTTP ${statusCode})` };
  return { outcome: 'failed', reason: `HTTP ${statusCode}` };
}

function blockedCause(error: unknown): OutboundBlockedError | undefined {
  for (let current: unknown = error, depth = 0; current && depth < 5; depth++) {
    if (current instanceof OutboundBlockedError) return current;
    if ((current as { code?: unknown }).code === 'ERR_OUTBOUND_BLOCKED') return current as OutboundBlockedError;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function describeError(error: unknown): string {
  const err = error as { code?: unknown; message?: unknown; cause?: unknown };
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  const code = typeof err.code === 'string' ? err.code : typeof cause?.code === 'string' ? cause.code : undefined;
  const message = typeof err.message === 'string' ? err.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

export async function deliverHttp({ url, secret, messageId, payload, timeoutMs, policy, now }: HttpDeliveryRequest): Promise<DeliveryResult> {
  const check = policy.checkUrlSync(url);
  if (!check.ok) return { outcome: 'failed', reason: check.reason };
  if (!url.startsWith('http://') && !url.startsWith('https://')) return { outcome: 'failed', reason: 'not an http(s) endpoint' };

  const body = JSON.stringify(payload);
  let signature: string;
  try {
    signature = new Webhook(secret).sign(messageId, now, body);
  } catch (error) {
    return { outcome: 'failed', reason: `cannot sign: ${(error as Error).message}` };
  }

  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error(`no answer within ${timeoutMs} ms`));
  }, timeoutMs);
  timer.unref?.();
  try {
    const response = await request(url, {
      method: 'POST',
      dispatcher: agentFor(policy),
      signal: controller.signal,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      headers: {
        'content-type': 'application/json',
        'user-agent': USER_AGENT,
        'webhook-id': messageId,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signature,
      },
      body,
    });
    await drain(response.body);
    return classifyStatus(response.statusCode);
  } catch (error) {
    const blocked = blockedCause(error);
    if (blocked) return { outcome: 'failed', reason: blocked.message };
    if (timedOut) return { outcome: 'retry', reason: `timeout: no answer within ${timeoutMs} ms` };
    return { outcome: 'retry', reason: describeError(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** Reads and drops the answer, up to MAX_RESPONSE_BYTES; a larger one is cut off (the connection is closed). */
async function drain(body: AsyncIterable<Buffer> & { destroy(error?: Error): unknown }): Promise<void> {
  let size = 0;
  try {
    for await (const chunk of body) {
      size += chunk.length;
      if (size > MAX_RESPONSE_BYTES) {
        body.destroy();
        return;
      }
    }
  } catch {
    // The status is what counts; a body cut short changes nothing.
  }
}
