import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { devicePages, exportHeader, exportLine } from '../../src/devices/device-export.js';
import { DeviceImporter, detectFormat, readDeviceFile, type DeviceFileFormat } from '../../src/devices/device-import.js';
import { DevicesService } from '../../src/devices/devices-service.js';
import { OutboundPolicy } from '../../src/notifications/outbound-policy.js';
import type { Db } from '../../src/storage/database.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { deviceCsv } from '../support/device-files.js';

let database: TestDatabase;
let db: Db;
let importer: DeviceImporter;
const trace = { correlationId: 'import-test', actor: 'test' };

beforeAll(async () => {
  database = await createTestDatabase();
  db = database.storage.db;
  importer = new DeviceImporter(db, new DevicesService(db, 'RU', new OutboundPolicy('127.0.0.1')));
});
afterAll(async () => database.close());

async function importText(text: string, options: { partial?: boolean; format?: DeviceFileFormat } = {}) {
  const format = options.format ?? detectFormat(undefined, text);
  return importer.import({ ...readDeviceFile(text, format), format, source: 'test' }, { partial: options.partial ?? false, trace });
}

async function countDevices(prefix: string): Promise<number> {
  const row = await db.selectFrom('devices').select((eb) => eb.fn.countAll<number>().as('n')).where('device_id', 'like', `${prefix}-%`).executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('devices import', () => {
  it('of 10,000 rows with 3 bad ones imports nothing and names the 3 lines and why; --partial imports the rest in one go', async () => {
    const { text, badLines } = deviceCsv(10_000, 'bulk');
    const refused = await importText(text);
    expect(refused.committed).toBe(false);
    expect(refused.imported).toBe(0);
    expect(refused.rows).toBe(10_000);
    expect(refused.rejected.map((row) => [row.line, row.reasons.join('; ')])).toEqual([
      [1234, expect.stringMatching(/^msisdn: must be a phone number/)],
      [5000, expect.stringMatching(/^type: must be one of: speaker, sensor_smoke/)],
      [9999, 'endpoint: is required for a speaker'],
    ]);
    expect(Object.keys(badLines).map(Number)).toEqual(refused.rejected.map((row) => row.line));
    expect(await countDevices('bulk')).toBe(0);

    const partial = await importText(text, { partial: true });
    expect(partial).toMatchObject({ committed: true, imported: 9_997, rejected: [{ line: 1234 }, { line: 5000 }, { line: 9999 }] });
    expect(partial.secretsGenerated).toBe(partial.byType.speaker);
    expect(await countDevices('bulk')).toBe(9_997);
    // Numbers stored in E.164, speakers with a secret of their own, as the API makes them.
    const sample = await db.selectFrom('devices').selectAll().where('device_id', 'in', ['bulk-1', 'bulk-10']).orderBy('id').execute();
    expect(sample.map((row) => [row.device_id, row.msisdn, row.signing_secret?.startsWith('whsec_') ?? null])).toEqual([
      ['bulk-1', '+79160014567', null],
      ['bulk-10', '+79161000010', true],
    ]);
    // One summary row in the event log, not 10,000.
    const logged = await db.selectFrom('event_logs').selectAll().where('type', '=', 'device.imported').execute();
    expect(logged).toHaveLength(1);
    expect(logged[0]!.details).toMatchObject({ imported: 9_997, rejected: 3, rejected_lines: [1234, 5000, 9999] });
    expect(JSON.stringify(logged[0]!.details)).not.toContain('whsec_');
  });

  it('rejects a device_id already registered or twice in the file, and reads JSON lines', async () => {
    const text = [
      JSON.stringify({ device_id: 'bulk-1', type: 'sensor_smoke', msisdn: '+79161234567' }),
      JSON.stringify({ device_id: 'jsonl-1', type: 'sensor_smoke', msisdn: '+7 916 123-45-67', metadata: { room: 'hall' } }),
      '',
      '{"device_id": "jsonl-2", "type": "sensor_smoke"',
      JSON.stringify({ device_id: 'jsonl-1', type: 'sensor_smoke', msisdn: '+79161234567' }),
      JSON.stringify({ device_id: 'jsonl-3', type: 'sensor_smoke', msisdn: '+79161234567', endpoint: 'http://127.0.0.1/x', colour: 'red' }),
      JSON.stringify({ device_id: 'jsonl-4', type: 'speaker', msisdn: '+79161234567', endpoint: 'http://169.254.169.254/latest' }),
    ].join('\n');
    expect(detectFormat(undefined, text)).toBe('jsonl');
    const report = await importText(text, { partial: true });
    expect(report.rejected.map((row) => [row.line, row.reasons.join('; ')])).toEqual([
      [1, expect.stringContaining('device_id: bulk-1 is already registered')],
      [4, expect.stringMatching(/^not valid JSON/)],
      [5, 'device_id: jsonl-1 is also on line 2'],
      [6, 'colour: is not a known field'],
      [7, expect.stringMatching(/^endpoint: .*OUTBOUND_ALLOW_HOSTS/)],
    ]);
    expect(report.imported).toBe(1);
    expect(await db.selectFrom('devices').select(['msisdn', 'metadata']).where('device_id', '=', 'jsonl-1').executeTakeFirst()).toEqual({
      msisdn: '+79161234567',
      metadata: { room: 'hall' },
    });
  });

  it('exports every device page by page in a form the import reads back, secrets only when asked', async () => {
    const exported = async (format: DeviceFileFormat, withSecrets: boolean) => {
      let text = exportHeader(format, withSecrets);
      for await (const page of devicePages(db)) text += page.map((row) => exportLine(row, format, withSecrets)).join('');
      return text;
    };
    // A page and a half is enough to cross a page boundary.
    const first = await db.selectFrom('devices').select('id').orderBy('id').executeTakeFirstOrThrow();
    await db.deleteFrom('devices').where('id', '>', first.id + 1_500).execute();
    const before = await db.selectFrom('devices').select(['device_id', 'type', 'msisdn', 'name', 'endpoint', 'enabled', 'metadata', 'signing_secret']).orderBy('id').execute();
    expect(before.length).toBeGreaterThan(1_000); // more than one page
    const csv = await exported('csv', true);
    expect((await exported('csv', false)).includes('whsec_')).toBe(false);
    const jsonl = await exported('jsonl', true);

    for (const text of [csv, jsonl]) {
      await db.deleteFrom('devices').execute();
      const report = await importText(text);
      expect(report).toMatchObject({ committed: true, imported: before.length, rejected: [], secretsGenerated: 0 });
      const after = await db.selectFrom('devices').select(['device_id', 'type', 'msisdn', 'name', 'endpoint', 'enabled', 'metadata', 'signing_secret']).orderBy('id').execute();
      expect(after).toEqual(before);
    }
  });
});
