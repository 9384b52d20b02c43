/**
 * The configuration reference (docs/configuration.md) and the README's configuration table, both
 * written from the config schema so neither can drift from what the gateway accepts.
 */
import { ConfigSchema, secretSettings } from './config.js';

interface SettingSchema {
  type?: string;
  default?: string | number | boolean;
  description?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  pattern?: string;
  examples?: unknown[];
  anyOf?: { const?: unknown }[];
}

const settings = Object.entries(ConfigSchema.properties) as [string, SettingSchema][];

/** Every variable the gateway reads, in schema order. */
export const configVariables: readonly string[] = settings.map(([name]) => name);

/** The sections of docs/configuration.md; a variable listed nowhere lands in "Other settings". */
export const configSections: readonly { title: string; intro: string; names: readonly string[] }[] = [
  { title: 'HTTP server', intro: 'Where the API listens and what it accepts.', names: ['PORT', 'HOST', 'BODY_LIMIT_BYTES'] },
  {
    title: 'Storage',
    intro: 'PostgreSQL when `DATABASE_URL` is set, otherwise an embedded PGlite database in a folder (one gateway process per folder).',
    names: ['DATABASE_URL', 'DATABASE_POOL_SIZE', 'DATABASE_PREPARED_STATEMENTS', 'DATA_DIR'],
  },
  { title: 'Access', intro: 'API keys and the signatures of incoming device events.', names: ['ADMIN_API_KEY', 'WEBHOOK_SIGNING_SECRET'] },
  { title: 'Logging', intro: 'pino logs on standard output.', names: ['LOG_LEVEL', 'LOG_FORMAT'] },
  { title: 'Phone numbers', intro: 'Every number is stored in E.164.', names: ['DEFAULT_COUNTRY'] },
  {
    title: 'Speaker notifications',
    intro: 'Telecom → home: the signed webhooks and MQTT messages that tell speakers about incoming calls.',
    names: ['OUTBOUND_ALLOW_HOSTS', 'NOTIFICATION_TTL_S', 'NOTIFICATION_TIMEOUT_MS', 'NOTIFICATION_CONCURRENCY'],
  },
  {
    title: 'Instances',
    intro: 'Several gateways may share one PostgreSQL and one FreeSWITCH.',
    names: ['INSTANCE_ID'],
  },
  {
    title: 'Telephony',
    intro: 'Home → telecom: where alarm calls are placed. Without FreeSWITCH the built-in mock telephony answers (magic numbers in the README).',
    names: [
      'TELEPHONY',
      'FREESWITCH_ESL_URL',
      'FREESWITCH_ESL_PASSWORD',
      'FREESWITCH_DIAL_STRING',
      'FREESWITCH_TTS_ENGINE',
      'FREESWITCH_TTS_VOICE',
      'FREESWITCH_PROMPT_FILE',
      'FREESWITCH_ACK_PROMPT_FILE',
      'FREESWITCH_CALLEE_HEADER',
      'FREESWITCH_ANNOUNCE_INBOUND',
    ],
  },
  {
    title: 'Retention',
    intro:
      'Expired rows are removed in the background, in small batches (one short statement each), and each pass that removed something is logged ' +
      '(`retention pass removed expired rows`, with the count per table). Rows still needed are never removed.',
    names: ['EVENT_LOG_RETENTION_DAYS', 'CALL_RETENTION_DAYS', 'NOTIFICATION_RETENTION_DAYS', 'RETENTION_INTERVAL_S', 'RETENTION_BATCH_SIZE'],
  },
];

function code(value: unknown): string {
  return `\`${String(value)}\``;
}

function allowedValues(schema: SettingSchema): unknown[] | undefined {
  return schema.anyOf?.map((option) => option.const);
}

/** What kind of value a setting takes, in words. */
export function describeType(schema: SettingSchema): string {
  const allowed = allowedValues(schema);
  if (allowed) return `one of ${allowed.map(code).join(', ')}`;
  if (schema.type === 'integer') {
    if (schema.minimum !== undefined && schema.maximum !== undefined) return `integer, ${schema.minimum} to ${schema.maximum}`;
    if (schema.minimum !== undefined) return `integer, at least ${schema.minimum}`;
    return 'integer';
  }
  if (schema.type === 'boolean') return 'boolean (`true`/`false`, `1`/`0`, `yes`/`no`)';
  const parts = ['text'];
  if (schema.minLength !== undefined && schema.minLength > 1) parts.push(`at least ${schema.minLength} characters`);
  if (schema.pattern !== undefined) parts.push(`matching ${code(schema.pattern)}`);
  return parts.join(', ');
}

function defaultText(schema: SettingSchema): string {
  if (schema.default === undefined) return '(unset)';
  if (schema.default === '') return '(empty)';
  return code(schema.default);
}

export function configurationTable(): string {
  const rows = settings.map(([name, schema]) => {
    const { default: fallback, description } = schema;
    return `| \`${name}\` | ${fallback === undefined ? '(unset)' : `\`${String(fallback)}\``} | ${description ?? ''} |`;
  });
  return ['| Variable | Default | Meaning |', '|---|---|---|', ...rows].join('\n');
}

/** docs/configuration.md, in full. */
export function configurationReference(): string {
  const bySchema = new Map(settings);
  const listed = new Set(configSections.flatMap((section) => section.names));
  const unlisted = configVariables.filter((name) => !listed.has(name));
  const sections = [...configSections, ...(unlisted.length ? [{ title: 'Other settings', intro: '', names: unlisted }] : [])];
  const lines: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated by `npm run docs:config` from the config schema (src/config/config.ts); do not edit by hand. -->',
    '',
    'The gateway reads its whole configuration from environment variables, checked at start: a bad value',
    'stops it with a message naming the variable (exit code 2). An empty variable counts as unset.',
    'Secret settings are never shown back, neither in those messages nor in logs.',
    '',
    '| Variable | Default | Secret |',
    '|---|---|---|',
    ...sections.flatMap((section) =>
      section.names.map((name) => `| [\`${name}\`](#${name.toLowerCase()}) | ${defaultText(bySchema.get(name) ?? {})} | ${secretSettings.has(name) ? 'yes' : ''} |`),
    ),
  ];
  for (const section of sections) {
    lines.push('', `## ${section.title}`, '');
    if (section.intro) lines.push(section.intro, '');
    for (const name of section.names) {
      const schema = bySchema.get(name);
      if (!schema) throw new Error(`configSections names ${name}, which the config schema does not have`);
      const example = (schema.examples?.[0] as string | number | undefined) ?? (schema.default === undefined || schema.default === '' ? undefined : schema.default);
      lines.push(
        `### ${name}`,
        '',
        schema.description ?? '',
        '',
        `- Type: ${describeType(schema)}`,
        `- Default: ${defaultText(schema)}`,
        ...(secretSettings.has(name) ? ['- Secret: yes (never shown in error messages or logs)'] : []),
        ...(example === undefined ? [] : [`- Example: \`${name}=${String(example)}\``]),
        '',
      );
    }
  }
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

export const TABLE_START = '<!-- configuration:start (generated by `npm run docs:config`) -->';
export const TABLE_END = '<!-- configuration:end -->';

/** The README text with its configuration table replaced by the current one. */
export function withConfigurationTable(readme: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error('README.md has no configuration table markers');
  return `${readme.slice(0, start + TABLE_START.length)}\n${configurationTable()}\n${readme.slice(end)}`;
}
