/**
 * Errors Node's HTTP parser meets before Fastify sees a request (headers over MAX_HEADER_BYTES,
 * a request slower than REQUEST_TIMEOUT_MS, bytes that are not HTTP) are answered like every
 * other error, as application/problem+json, and the connection is closed.
 */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { problemCatalog, type ProblemCode } from './problems.js';
import { problemType } from './error-handler.js';

const byNodeCode: Partial<Record<string, ProblemCode>> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'request_timeout',
  HPE_HEADER_OVERFLOW: 'headers_too_large',
};

const details: Partial<Record<ProblemCode, string>> = {
  request_timeout: 'The request was not received in time; the connection is closed.',
  headers_too_large: 'The request line and headers are larger than this gateway accepts.',
  bad_request: 'The request is not valid HTTP.',
};

export function handleClientError(this: FastifyInstance, error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const code = byNodeCode[error.code ?? ''] ?? 'bad_request';
  const { status, title } = problemCatalog[code];
  this.log.debug({ err: error, code }, 'client error before a request could be read');
  // Only when no response has begun on this connection (as Node itself checks).
  const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !started) {
    const requestId = randomUUID();
    const body = JSON.stringify({ type: problemType(code), title, status, detail: details[code] ?? title, code, request_id: requestId });
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
