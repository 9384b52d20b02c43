/**
 * The single error handler: whatever went wrong, the client gets application/problem+json with
 * type, title, status, detail, a stable code and the request id; validation failures list the
 * offending fields; a 5xx never says more than "internal error".
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable, isTransientConflict } from '../storage/errors.js';
import { ApiProblem, problemCatalog, type FieldError, type ProblemCode } from './problems.js';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  request_id: string;
  errors?: FieldError[];
}

const fastifyCodes: Partial<Record<string, ProblemCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'empty_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_BAD_URL: 'bad_request',
};

export function problemType(code: ProblemCode): string {
  return `urn:tas-iot-gateway:problem:${code}`;
}

export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  code: ProblemCode,
  detail: string,
  errors?: FieldError[],
): FastifyReply {
  const { status, title } = problemCatalog[code];
  const body: ProblemBody = { type: problemType(code), title, status, detail, code, request_id: request.id };
  if (errors && errors.length > 0) body.errors = errors;
  if (status === 503) void reply.header('retry-after', '5');
  return reply.code(status).type('application/problem+json').send(body);
}

interface AjvLikeError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** Turns schema-validation errors into `{field, message}` pairs such as `body.msisdn`. */
export function fieldErrors(context: string, validation: AjvLikeError[]): FieldError[] {
  const byField = new Map<string, AjvLikeError[]>();
  for (const error of validation) {
    const base = [context, ...(error.instancePath ?? '').split('/').filter(Boolean)].join('.');
    let field = base;
    if (error.keyword === 'required' && typeof error.params?.missingProperty === 'string') {
      field = `${base}.${error.params.missingProperty}`;
    } else if (error.keyword === 'additionalProperties' && typeof error.params?.additionalProperty === 'string') {
      field = `${base}.${error.params.additionalProperty}`;
    }
    byField.set(field, [...(byField.get(field) ?? []), error]);
  }
  return [...byField].map(([field, errors]) => ({ field, message: describeErrors(errors) }));
}

function describeErrors(errors: AjvLikeError[]): string {
  const first = errors[0]!;
  if (first.keyword === 'required') return 'is required';
  if (first.keyword === 'additionalProperties') return 'is not a known field';
  if (errors.some((error) => error.keyword === 'anyOf')) {
    // A union (nullable field, choice of literals): say what would have been accepted.
    const options = errors.flatMap((error) =>
      error.keyword === 'const' ? [JSON.stringify(error.params?.allowedValue)] : error.keyword === 'type' ? [String(error.params?.type)] : [],
    );
    return options.length > 0 ? `must be ${[...new Set(options)].join(' or ')}` : 'does not match any allowed form';
  }
  if (first.keyword === 'enum' && Array.isArray(first.params?.allowedValues)) {
    return `must be one of: ${first.params.allowedValues.join(', ')}`;
  }
  return [...new Set(errors.map((error) => error.message ?? 'is not valid'))].join('; ');
}

export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | ApiProblem | Error, request, reply) => {
    if (error instanceof ApiProblem) {
      return sendProblem(request, reply, error.code, error.detail, error.errors);
    }
    const fastifyError = error as FastifyError;
    if (fastifyError.validation) {
      const errors = fieldErrors(fastifyError.validationContext ?? 'request', fastifyError.validation);
      const detail = errors.map((e) => `${e.field} ${e.message}`).join('; ');
      return sendProblem(request, reply, 'validation_failed', detail, errors);
    }
    const mapped = fastifyError.code ? fastifyCodes[fastifyError.code] : undefined;
    if (mapped) return sendProblem(request, reply, mapped, fastifyError.message);
    if (isTransientConflict(error)) {
      request.log.warn({ err: error }, 'transaction rolled back by the database (deadlock or serialization conflict)');
      return sendProblem(request, reply, 'busy_retry', 'The request collided with concurrent work and nothing of it was kept; retry it.');
    }
    if (isDatabaseUnavailable(error)) {
      request.log.error({ err: error }, 'database unavailable');
      return sendProblem(request, reply, 'database_unavailable', 'The database cannot be reached right now; retry shortly.');
    }
    const status = fastifyError.statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      return sendProblem(request, reply, 'bad_request', fastifyError.message);
    }
    request.log.error({ err: error }, 'unhandled error');
    return sendProblem(request, reply, 'internal_error', 'The gateway failed to handle this request; it has been logged.');
  });

  app.setNotFoundHandler((request, reply) =>
    sendProblem(request, reply, 'route_not_found', `${request.method} ${request.url.split('?')[0]} is not a route of this API.`),
  );
}
