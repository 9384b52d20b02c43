/**
 * The gateway's REST API as the console calls it: the admin key in the X-API-Key header (never
 * in a URL), problem+json errors turned into ApiError with the API's own messages.
 */
export interface FieldError {
  field: string;
  message: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
  ) {
    super(detail);
  }

  /** The message of one body field (`msisdn` for `body.msisdn`), if the API named it. */
  fieldMessage(field: string): string | undefined {
    return this.errors.find((error) => error.field === `body.${field}` || error.field.startsWith(`body.${field}.`) || error.field.startsWith(`body.${field}[`))
      ?.message;
  }
}

export type Query = Record<string, string | number | boolean | undefined>;

export function queryString(query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined && value !== '') params.set(name, String(value));
  const text = params.toString();
  return text ? `?${text}` : '';
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export class Api {
  constructor(readonly key: string) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { 'x-api-key': this.key, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, 'network', 'The gateway cannot be reached. Is it running?');
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    const parsed: unknown = text ? JSON.parse(text) : undefined;
    if (!response.ok) {
      const problem = (parsed ?? {}) as { code?: string; detail?: string; title?: string; errors?: FieldError[] };
      throw new ApiError(response.status, problem.code ?? 'error', problem.detail ?? problem.title ?? `HTTP ${response.status}`, problem.errors ?? []);
    }
    return parsed as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', `${path}${queryString(query)}`);
  }
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body);
  }
  delete(path: string): Promise<void> {
    return this.request<void>('DELETE', path);
  }
}

export const enc = encodeURIComponent;

// The shapes the API answers (see /openapi.json).

export interface EventLogItem {
  id: number;
  at: string;
  type: string;
  status: string;
  device_id: string | null;
  msisdn: string | null;
  correlation_id: string | null;
  request_id: string | null;
  details: Record<string, unknown>;
}

export interface Device {
  device_id: string;
  type: 'speaker' | 'sensor_smoke';
  msisdn: string;
  name: string | null;
  endpoint: string | null;
  metadata: Record<string, unknown>;
  enabled: boolean;
  has_signing_secret: boolean;
  created_at: string;
  updated_at: string;
  signing_secret?: string;
}

export interface CallAction {
  type: 'call';
  to: string[];
  message: string;
  caller_id: string | null;
  ring_timeout_s: number;
  attempts: number;
  retry_delay_s: number;
  require_ack: boolean;
}

export interface Rule {
  id: number;
  name: string;
  enabled: boolean;
  event_type: string;
  device_id: string | null;
  msisdn: string | null;
  action: CallAction;
  cooldown_s: number;
  created_at: string;
  updated_at: string;
}

export interface AlarmCall {
  id: string;
  to: string;
  position: number;
  attempt: number;
  status: string;
  acknowledged: boolean;
  hangup_cause: string | null;
  sip_code: number | null;
  redial_of: string | null;
  queued_at: string;
  due_at: string;
  dialing_at: string | null;
  ringing_at: string | null;
  answered_at: string | null;
  ended_at: string | null;
}

export interface Alarm {
  id: string;
  rule_id: number;
  device_id: string;
  msisdn: string | null;
  event_id: string;
  event_type: string;
  status: 'active' | 'resolved' | 'exhausted' | 'canceled';
  action: Partial<CallAction>;
  correlation_id: string;
  started_at: string;
  ended_at: string | null;
  end_reason: string | null;
  calls?: AlarmCall[];
}

export interface IncomingCall {
  call_id: string;
  caller: string;
  caller_name: string | null;
  callee: string;
  state: 'ringing' | 'answered' | 'ended';
  source: string;
  correlation_id: string;
  received_at: string;
  ringing_at: string | null;
  answered_at: string | null;
  ended_at: string | null;
  notifications?: Notification[];
  /** In the list: each speaker notification in short. */
  deliveries?: { device_id: string; type: string; status: string; latency_ms: number | null }[];
}

export interface Notification {
  id: string;
  device_id: string;
  type: string;
  status: string;
  attempts: number;
  created_at: string;
  delivered_at: string | null;
  latency_ms: number | null;
  last_error: string | null;
  expires_at: string;
}

export interface ApiKey {
  id: number;
  role: 'admin' | 'webhook' | 'telephony';
  name: string;
  key_prefix: string;
  created_at: string;
  revoked_at: string | null;
  key?: string;
}
