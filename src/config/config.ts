import { Type, type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { OutboundPolicy } from '../notifications/outbound-policy.js';

/**
 * Every setting the gateway reads from its environment, with its default and meaning.
 * docs/configuration.md and the README table are written from this schema.
 */
export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: 'TCP port the HTTP API listens on.' }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the HTTP API binds to (`127.0.0.1` to keep it local).' }),
  DATABASE_URL: Type.Optional(
    Type.String({
      pattern: '^postgres(ql)?://',
      examples: ['postgresql://gateway:secret@db.example.net:5432/gateway'],
      description: 'PostgreSQL connection URL. Unset: an embedded PGlite database in `DATA_DIR`.',
    }),
  ),
  DATABASE_POOL_SIZE: Type.Integer({ minimum: 1, maximum: 200, default: 10, description: 'Connections in the PostgreSQL pool.' }),
  DATABASE_PREPARED_STATEMENTS: Type.Integer({
    minimum: 0,
    maximum: 10_000,
    default: 0,
    description:
      'Most statements prepared on each PostgreSQL connection (a statement is prepared when it runs a second time there, so it is parsed and planned once; each holds about 70 KB of the server connection\'s memory); `0`, the default, prepares none. Measured: webhook latency lower, speaker notifications\' tail higher (docs/benchmarks.md, change 29); not for a connection pooler in transaction mode that cannot keep them (PgBouncer before 1.21).',
  }),
  DATA_DIR: Type.String({ minLength: 1, default: './data', description: 'Folder of the embedded database (used only without `DATABASE_URL`).', examples: ['/var/lib/iot-gateway'] }),
  ADMIN_API_KEY: Type.Optional(
    Type.String({ minLength: 24, description: 'An admin key accepted in addition to stored keys (at least 24 characters). Unset and no admin key stored: the first start creates one and prints it once.' }),
  ),
  API_KEY_CACHE_TTL_MS: Type.Integer({
    minimum: 0,
    maximum: 300_000,
    default: 10_000,
    description:
      'How long a valid API key is remembered in memory, sparing a database read per request. A revoke takes effect at once on the instance that revoked it and within this time on the others; `0` reads the database every time.',
  }),
  LOG_LEVEL: Type.Union(
    [
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ],
    { default: 'info', description: 'pino log level.' },
  ),
  LOG_FORMAT: Type.Union([Type.Literal('auto'), Type.Literal('json'), Type.Literal('pretty')], {
    default: 'auto',
    description: '`json`: one JSON line per entry; `pretty`: readable text; `auto`: pretty on a terminal, JSON otherwise.',
  }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576, description: 'Largest request body accepted; larger bodies get 413.' }),
  MAX_HEADER_BYTES: Type.Integer({
    minimum: 1024,
    maximum: 1_048_576,
    default: 16_384,
    description: 'Largest request head (request line and headers) accepted; a larger one gets 431 and the connection is closed.',
  }),
  REQUEST_TIMEOUT_MS: Type.Integer({
    minimum: 100,
    maximum: 600_000,
    default: 30_000,
    description: 'Longest a client may take to send a whole request, headers and body; a slower one (a client dribbling its body) gets 408 and is disconnected.',
  }),
  RATE_LIMIT_PER_KEY: Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    default: 100,
    description: 'Requests per second one API key may send to the webhook intake and to the incoming-call intake (each route counted apart; per gateway instance); more get 429 with `Retry-After`. `0` turns the limit off (load tests).',
  }),
  DEFAULT_COUNTRY: Type.String({
    pattern: '^[A-Z]{2}$',
    default: 'RU',
    description: 'ISO country used to read phone numbers written without a country code (`8 916 …`).',
  }),
  OUTBOUND_ALLOW_HOSTS: Type.String({
    pattern: '^[A-Za-z0-9.:/*\\[\\], -]*$',
    default: '',
    examples: ['127.0.0.1,10.20.0.0/16,speaker.lan'],
    description: 'Hosts, addresses or CIDR ranges (comma-separated) that speaker endpoints may use although they are private, loopback or link-local, e.g. `127.0.0.1,10.20.0.0/16,speaker.lan`. Everything else in those ranges is refused.',
  }),
  NOTIFICATION_TTL_S: Type.Integer({ minimum: 1, maximum: 3600, default: 30, description: 'How long a speaker notification stays worth delivering (`expires_at`); retries stop then.' }),
  NOTIFICATION_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 60_000, default: 3_000, description: 'Timeout of one delivery attempt to a speaker endpoint.' }),
  NOTIFICATION_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 10_000, default: 64, description: 'Most speaker deliveries in flight at once.' }),
  NOTIFICATION_CONCURRENCY_PER_HOST: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 16,
    description: 'Most speaker deliveries in flight at once to one host (scheme, host and port of the endpoint): a vendor whose endpoints hang cannot hold every slot.',
  }),
  WEBHOOK_SIGNING_SECRET: Type.Optional(
    Type.String({
      pattern: '^whsec_[A-Za-z0-9+/]{24,}={0,2}$',
      examples: ['whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'],
      description: 'Standard Webhooks secret (`whsec_...`) shared with the smart-home system: when set, device events must carry valid `webhook-id`, `webhook-timestamp` and `webhook-signature` headers (besides the API key).',
    }),
  ),
  METRICS_TOKEN: Type.Optional(
    Type.String({
      minLength: 24,
      maxLength: 200,
      pattern: '^[\\x21-\\x7e]+$',
      description: 'A token (at least 24 characters) a Prometheus scraper may send as `Authorization: Bearer <token>` to read `GET /metrics`. Unset: `/metrics` needs an admin API key.',
    }),
  ),
  INSTANCE_ID: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z0-9._:-]{1,100}$',
      examples: ['gateway-a'],
      description: 'Name of this gateway instance (default: host name and port). Keep it stable across restarts: calls a crashed instance had in flight are reconciled by the instance that comes back under the same name, at once.',
    }),
  ),
  INSTANCE_STALE_AFTER_S: Type.Integer({
    minimum: 2,
    maximum: 600,
    default: 20,
    description: 'An instance whose heartbeat is older than this is taken for dead: another instance reconciles its calls in flight and resends its deliveries. Each instance beats four times per period. An instance that stops gracefully hands its work over at once.',
  }),
  TELEPHONY: Type.Union([Type.Literal('auto'), Type.Literal('mock'), Type.Literal('freeswitch')], {
    default: 'auto',
    description: '`freeswitch`: place calls through the Event Socket; `mock`: the built-in mock telephony; `auto`: FreeSWITCH when `FREESWITCH_ESL_URL` is set, else the mock.',
  }),
  FREESWITCH_ESL_URL: Type.Optional(
    Type.String({ pattern: '^tcp://[^\\s/:]+:[0-9]{1,5}$', examples: ['tcp://127.0.0.1:8021'], description: 'FreeSWITCH Event Socket (inbound), e.g. `tcp://127.0.0.1:8021`.' }),
  ),
  FREESWITCH_ESL_PASSWORD: Type.Optional(Type.String({ minLength: 1, description: 'Event Socket password (required with `FREESWITCH_ESL_URL`).' })),
  FREESWITCH_DIAL_STRING: Type.String({
    pattern: '^[A-Za-z0-9/_.:@=-]*\\{number\\}[A-Za-z0-9/_.:@=-]*$',
    default: 'sofia/gateway/tas/{number}',
    examples: ['sofia/internal/{number}@10.0.0.5', 'loopback/{number}/default'],
    description: 'Dial-string template; `{number}` becomes the E.164 number (digits and +). Only letters, digits and `/ _ . : @ = -` around it.',
  }),
  FREESWITCH_TTS_ENGINE: Type.String({ pattern: '^[A-Za-z0-9_-]{1,50}$', default: 'flite', description: 'TTS engine for alarm messages (`speak`).' }),
  FREESWITCH_TTS_VOICE: Type.String({ pattern: '^[A-Za-z0-9_-]{1,50}$', default: 'kal', description: 'TTS voice for alarm messages.' }),
  FREESWITCH_PROMPT_FILE: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9/_.:-]{1,300}$', description: 'A sound file played instead of speaking the message (`playback`).' }),
  ),
  FREESWITCH_CALLEE_HEADER: Type.String({
    pattern: '^[A-Za-z0-9_-]{1,100}$',
    default: 'Caller-Destination-Number',
    examples: ['variable_sip_to_user'],
    description: 'Event header holding the called number of an inbound FreeSWITCH call (e.g. `variable_sip_to_user`).',
  }),
  FREESWITCH_ANNOUNCE_INBOUND: Type.Boolean({ default: true, description: 'Announce inbound calls seen on the FreeSWITCH Event Socket to speakers.' }),
  FREESWITCH_ACK_PROMPT_FILE: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9/_.:-]{1,300}$', description: 'A sound file asking to press 1; unset: "Press 1 to confirm" is spoken.' }),
  ),
  EVENT_LOG_RETENTION_DAYS: Type.Integer({
    minimum: 0,
    maximum: 36_500,
    default: 90,
    description: 'Days event-log rows are kept, and with them the record of received device events (which recognises a repeated `event_id`); `0` keeps them forever.',
  }),
  CALL_RETENTION_DAYS: Type.Integer({
    minimum: 0,
    maximum: 36_500,
    default: 90,
    description: 'Days an ended alarm (with its calls) and an incoming call are kept; `0` keeps them forever. Active alarms, and incoming calls that still have notifications, are never removed.',
  }),
  NOTIFICATION_RETENTION_DAYS: Type.Integer({
    minimum: 0,
    maximum: 36_500,
    default: 90,
    description: 'Days a settled speaker notification is kept; `0` keeps them forever. Pending and in-flight notifications are never removed.',
  }),
  RETENTION_INTERVAL_S: Type.Integer({
    minimum: 10,
    maximum: 86_400,
    default: 3_600,
    description: 'How often expired rows are looked for (the first pass runs a minute after start).',
  }),
  RETENTION_BATCH_SIZE: Type.Integer({
    minimum: 10,
    maximum: 50_000,
    default: 1_000,
    description: 'Rows removed per statement; small batches keep each transaction short and never block the intake.',
  }),
});

export type Config = Static<typeof ConfigSchema>;

/** Settings whose values are never shown (in errors, docs examples or logs). */
export const secretSettings: ReadonlySet<string> = new Set(['ADMIN_API_KEY', 'DATABASE_URL', 'FREESWITCH_ESL_PASSWORD', 'WEBHOOK_SIGNING_SECRET', 'METRICS_TOKEN']);

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const booleanWords: Record<string, boolean> = { true: true, '1': true, yes: true, false: false, '0': false, no: false };

/** Reads the config from an environment, converting numbers and booleans, and names every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, schema] of Object.entries(ConfigSchema.properties)) {
    const text = env[name];
    if (text === undefined || text === '') {
      if ('default' in schema) raw[name] = schema.default;
      continue;
    }
    const kind = (schema as { type?: string }).type;
    if (kind === 'integer') {
      raw[name] = /^-?\d+$/.test(text.trim()) ? Number(text) : text;
    } else if (kind === 'boolean') {
      const value = booleanWords[text.trim().toLowerCase()];
      raw[name] = value ?? text;
    } else {
      raw[name] = text;
    }
  }
  for (const [name, schema] of Object.entries(ConfigSchema.properties)) {
    const value = raw[name];
    if (value === undefined) continue;
    const check = Compile(Type.Object({ value: schema }));
    const [error] = check.Errors({ value });
    if (!error) continue;
    const shown = secretSettings.has(name) ? '(hidden)' : JSON.stringify(value);
    const allowed = (schema as { anyOf?: { const?: unknown }[] }).anyOf?.map((option) => option.const);
    const reason = allowed ? `must be one of ${allowed.join(', ')}` : error.message;
    const description = (schema as { description?: string }).description;
    problems.push(`${name}=${shown}: ${reason}${description ? ` (${description})` : ''}`);
  }
  if (typeof raw.OUTBOUND_ALLOW_HOSTS === 'string') {
    try {
      new OutboundPolicy(raw.OUTBOUND_ALLOW_HOSTS);
    } catch (error) {
      problems.push((error as Error).message);
    }
  }
  if (raw.FREESWITCH_ESL_URL && !raw.FREESWITCH_ESL_PASSWORD) {
    problems.push('FREESWITCH_ESL_PASSWORD: is required when FREESWITCH_ESL_URL is set');
  }
  if (raw.TELEPHONY === 'freeswitch' && !raw.FREESWITCH_ESL_URL) {
    problems.push('FREESWITCH_ESL_URL: is required when TELEPHONY=freeswitch');
  }
  if (problems.length > 0) {
    throw new ConfigError(`Invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return raw as Config;
}

/** The instance name: INSTANCE_ID, or host name and port. */
export function instanceId(config: Config, hostname: string): string {
  return config.INSTANCE_ID ?? `${hostname}:${config.PORT}`;
}

/** Which telephony adapter the configuration asks for. */
export function telephonyKind(config: Config): 'freeswitch' | 'mock' {
  if (config.TELEPHONY === 'auto') return config.FREESWITCH_ESL_URL ? 'freeswitch' : 'mock';
  return config.TELEPHONY;
}
