/**
 * Bench data, loaded with SQL (INSERT ... SELECT generate_series) straight into the database, not
 * through the API: sensors each with a call rule, subscriber numbers with three HTTP speakers,
 * API keys, and millions of event-log rows.
 */
import { generateApiKey } from '../../src/api-keys/api-key-secrets.js';
import type { ScriptSession } from '../../src/storage/database.js';

export interface BenchKeys {
  webhook: string;
  telephony: string;
}

const pad = (expression: string) => `lpad((${expression})::text, 7, '0')`;

/**
 * `count` smoke sensors, each with a call rule without cooldown: every smoke event whose sensor has
 * no active alarm starts one, whichever run sends it (with a cooldown, the later runs of S1 would
 * find most of the 10,000 sensors inside it and do less work than the first).
 */
export async function loadSensors(session: ScriptSession, count: number): Promise<void> {
  await session.script(`
    set statement_timeout = 0;
    insert into devices (device_id, type, msisdn)
      select 'smoke-' || ${pad('g')}, 'sensor_smoke', '+7900' || ${pad('g')} from generate_series(0, ${count - 1}) g;
    insert into rules (name, event_type, device_id, action, cooldown_s)
      select 'smoke ' || g, 'smoke', 'smoke-' || ${pad('g')},
        jsonb_build_object('type', 'call', 'to', jsonb_build_array('+7901' || ${pad('g')}), 'message', 'Smoke in the kitchen',
          'caller_id', null, 'ring_timeout_s', 30, 'attempts', 1, 'retry_delay_s', 60, 'require_ack', false),
        0
      from generate_series(0, ${count - 1}) g;
    analyze devices; analyze rules;`);
}

export async function loadSpeakers(session: ScriptSession, numbers: number, speakerUrl: string, secret: string): Promise<void> {
  await session.script(`
    insert into devices (device_id, type, msisdn, endpoint, signing_secret)
      select 'spk-' || ${pad('n')} || '-' || k, 'speaker', '+7902' || ${pad('n')},
        '${speakerUrl}/s/spk-' || ${pad('n')} || '-' || k, '${secret}'
      from generate_series(0, ${numbers - 1}) n, generate_series(1, 3) k;
    analyze devices;`);
}

export async function createKeys(session: ScriptSession): Promise<BenchKeys> {
  const keys: Record<string, string> = {};
  for (const role of ['webhook', 'telephony'] as const) {
    const { key, prefix, hash } = generateApiKey();
    await session.script(`insert into api_keys (role, name, key_prefix, key_hash) values ('${role}', 'bench ${role}', '${prefix}', decode('${hash.toString('hex')}', 'hex'))`);
    keys[role] = key;
  }
  return { webhook: keys.webhook!, telephony: keys.telephony! };
}

/**
 * `rows` event-log rows over the last `days` days, for devices smoke-0..devices-1, each with its
 * own correlation id. The table's indexes are dropped for the load and rebuilt after (the same
 * definitions), which is several times faster than maintaining them row by row.
 */
export async function loadEventLogs(session: ScriptSession, rows: number, devices: number, days: number): Promise<void> {
  const indexes = await session.query<{ name: string; definition: string }>(
    `select indexname as name, indexdef as definition from pg_indexes
      where schemaname = current_schema() and tablename = 'event_logs' and indexname <> 'event_logs_pkey'`,
  );
  // Bulk work: no statement timeout for this session (the product's pool sets 15 s).
  await session.script('set statement_timeout = 0');
  for (const index of indexes) await session.script(`drop index "${index.name}"`);
  const step = (days * 86_400_000) / rows;
  await session.script(`
    insert into event_logs (at, type, status, device_id, msisdn, correlation_id, request_id, details)
      select now() - interval '${days} days' + (g::float8 * ${step}) * interval '1 millisecond',
        (array['event.received', 'rule.matched', 'alarm.started', 'call.queued', 'call.completed'])[1 + g % 5], 'ok',
        'smoke-' || ${pad(`(g / 5) % ${devices}`)}, '+7900' || ${pad(`(g / 5) % ${devices}`)},
        'bench-corr-' || (g / 5), 'bench-corr-' || (g / 5), jsonb_build_object('event_id', 'bench-' || (g / 5))
      from generate_series(0, ${rows - 1}) g`);
  for (const index of indexes) await session.script(index.definition);
  await session.script('analyze event_logs');
}
