/**
 * Every error the API can answer with: a stable machine-readable code, its HTTP status and title,
 * in one place. Rendered as application/problem+json (RFC 9457) by ./error-handler.ts.
 */
export const problemCatalog = {
  validation_failed: { status: 422, title: 'The request is not valid' },
  bad_request: { status: 400, title: 'The request cannot be read' },
  uri_too_long: { status: 414, title: 'A path parameter is too long' },
  malformed_json: { status: 400, title: 'The body is not valid JSON' },
  empty_body: { status: 400, title: 'A JSON body is required' },
  unsupported_media_type: { status: 415, title: 'Send the body as application/json' },
  payload_too_large: { status: 413, title: 'The body is too large' },
  invalid_cursor: { status: 422, title: 'The cursor is not valid' },
  unauthorized: { status: 401, title: 'A valid API key is required' },
  forbidden: { status: 403, title: 'This API key may not do that' },
  invalid_signature: { status: 401, title: 'The webhook signature is missing or not valid' },
  webhook_replayed: { status: 409, title: 'This signed webhook message was received before' },
  rate_limited: { status: 429, title: 'Too many requests for this API key' },
  request_timeout: { status: 408, title: 'The request took too long to arrive' },
  headers_too_large: { status: 431, title: 'The request headers are too large' },
  route_not_found: { status: 404, title: 'No such route' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  device_not_found: { status: 404, title: 'Device not found' },
  device_exists: { status: 409, title: 'A device with this device_id already exists' },
  device_has_no_secret: { status: 409, title: 'This device type has no signing secret' },
  rule_not_found: { status: 404, title: 'Rule not found' },
  alarm_not_found: { status: 404, title: 'Alarm not found' },
  alarm_not_active: { status: 409, title: 'The alarm has already ended' },
  incoming_call_not_found: { status: 404, title: 'Incoming call not found' },
  incoming_call_conflict: { status: 409, title: 'The call was reported with another callee' },
  api_key_not_found: { status: 404, title: 'API key not found' },
  last_admin_key: { status: 409, title: 'The last admin key cannot be revoked' },
  database_unavailable: { status: 503, title: 'The database is unavailable' },
  busy_retry: { status: 503, title: 'Concurrent work collided; retry' },
  internal_error: { status: 500, title: 'Internal error' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof problemCatalog;

export interface FieldError {
  /** Where the problem is: `body.msisdn`, `querystring.limit`, `params.device_id`. */
  field: string;
  message: string;
}

/** An error a service throws to answer with a known problem. */
export class ApiProblem extends Error {
  override name = 'ApiProblem';
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly errors?: FieldError[],
  ) {
    super(detail);
    this.status = problemCatalog[code].status;
  }
}

/** A 422 naming one field. */
export function invalidField(field: string, message: string): ApiProblem {
  return new ApiProblem('validation_failed', `${field}: ${message}`, [{ field, message }]);
}
