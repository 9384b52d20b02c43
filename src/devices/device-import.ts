/**
 * Bulk import of devices from CSV (with a header row) or JSON lines. Every row is checked with the
 * rules of `POST /api/v1/devices` (the same schema, E.164 numbers read in DEFAULT_COUNTRY, the
 * endpoint rules of the device type and the outbound policy); a rejected row is reported with its
 * line number and reasons. All accepted rows go in one transaction, in multi-row INSERTs, with one
 * `device.imported` row in the event log. A file with a rejected row imports nothing unless
 * `partial` is asked for. A device_id already registered is rejected as a duplicate: an import
 * adds devices, it never changes one.
 */
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { parse as parseCsv } from 'csv-parse/sync';
import { Type } from 'typebox';
import { appendEvent, type Trace } from '../event-log/event-log.js';
import { fieldErrors } from '../http/error-handler.js';
import { ApiProblem } from '../http/problems.js';
import { findUnsafeValue } from '../http/validation.js';
import type { Db, DbOrTrx } from '../storage/database.js';
import type { NewDeviceRow } from '../storage/schema.js';
import { deviceTypes, type DeviceType } from './device-types.js';
import { CreateDeviceBody } from './devices-schemas.js';
import { generateSigningSecret, type DevicesService } from './devices-service.js';
import { deviceColumns, type DeviceFileFormat } from './device-file.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

// The columns: the API's fields, and the signing secret of a speaker moved from elsewhere.
export { deviceColumns, type DeviceFileFormat } from './device-file.js';

const ImportedDevice = Type.Object(
  {
    ...CreateDeviceBody.properties,
    signing_secret: Type.Optional(Type.String({ pattern: '^whsec_[A-Za-z0-9+/]{24,}={0,2}$' })),
  },
  { additionalProperties: false },
);
const checkRow = addFormats(new Ajv({ allErrors: true, strict: false, removeAdditional: false, coerceTypes: false })).compile(ImportedDevice);


export interface SourceRow {
  /** Line of the file the row starts on (1 is the CSV header). */
  line: number;
  fields: Record<string, unknown>;
  /** Cells that could not be read as their column's type (CSV). */
  problems?: string[];
}

export interface RejectedRow {
  line: number;
  device_id?: string;
  reasons: string[];
}

export interface ImportReport {
  format: DeviceFileFormat;
  rows: number;
  imported: number;
  rejected: RejectedRow[];
  /** Whether the accepted rows were written (false: a rejected row with `partial` off, or a dry run). */
  committed: boolean;
  /** Speakers that were given a new signing secret (rows without `signing_secret`). */
  secretsGenerated: number;
  byType: Partial<Record<DeviceType, number>>;
}

/** The file's format from its name, or else from its first character. */
export function detectFormat(fileName: string | undefined, text: string): DeviceFileFormat {
  if (fileName && /\.(jsonl|ndjson|json)$/i.test(fileName)) return 'jsonl';
  if (fileName && /\.csv$/i.test(fileName)) return 'csv';
  return text.trimStart().replace(/^\uFEFF/, '').startsWith('{') ? 'jsonl' : 'csv';
}

export class DeviceFileError extends Error {
  override name = 'DeviceFileError';
}

/** Splits a file into rows with their line numbers; rows that cannot even be read are rejected here. */
export function readDeviceFile(text: string, format: DeviceFileFormat): { rows: SourceRow[]; rejected: RejectedRow[] } {
  return format === 'csv' ? readCsv(text) : readJsonLines(text);
}

function readJsonLines(text: string): { rows: SourceRow[]; rejected: RejectedRow[] } {
  const rows: SourceRow[] = [];
  const rejected: RejectedRow[] = [];
  text.replace(/^\uFEFF/, '').split('\n').forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (error) {
      rejected.push({ line, reasons: [`not valid JSON: ${(error as Error).message}`] });
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      rejected.push({ line, reasons: ['must be a JSON object, one device per line'] });
      return;
    }
    rows.push({ line, fields: value as Record<string, unknown> });
  });
  return { rows, rejected };
}

interface CsvRecord {
  record: string[];
  info: { lines: number };
}

function readCsv(text: string): { rows: SourceRow[]; rejected: RejectedRow[] } {
  const rejected: RejectedRow[] = [];
  const records = parseCsv(text, {
    bom: true,
    info: true,
    skip_empty_lines: true,
    relax_column_count: true,
    skip_records_with_error: true,
    on_skip: (error: { lines?: number; message: string } | undefined) => {
      if (error) rejected.push({ line: error.lines ?? 0, reasons: [`not readable as CSV: ${error.message}`] });
    },
  }) as unknown as CsvRecord[];
  const [header, ...body] = records;
  if (!header) throw new DeviceFileError('the file is empty: a CSV import needs a header row (device_id,type,msisdn,...)');
  const columns = header.record.map((name) => name.trim());
  const unknown = columns.filter((name) => !(deviceColumns as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new DeviceFileError(`line ${header.info.lines}: unknown column ${unknown.join(', ')} (the columns are ${deviceColumns.join(', ')})`);
  }
  for (const required of ['device_id', 'type', 'msisdn']) {
    if (!columns.includes(required)) throw new DeviceFileError(`line ${header.info.lines}: the header has no ${required} column`);
  }
  const rows: SourceRow[] = [];
  for (const { record, info } of body) {
    // info.lines is the line the record ends on; a record spans as many lines as its text holds.
    const line = info.lines - (record.join(',').match(/\n/g)?.length ?? 0);
    if (record.length !== columns.length) {
      rejected.push({ line, reasons: [`has ${record.length} fields, the header ${columns.length}`] });
      continue;
    }
    const fields: Record<string, unknown> = {};
    const reasons: string[] = [];
    columns.forEach((column, index) => {
      const value = record[index]!;
      if (value === '') return; // An empty cell is an absent field.
      if (column === 'enabled') {
        const flag = ({ true: true, false: false, '1': true, '0': false, yes: true, no: false } as Record<string, boolean>)[value.trim().toLowerCase()];
        if (flag === undefined) reasons.push('enabled: must be true or false');
        else fields.enabled = flag;
      } else if (column === 'metadata') {
        try {
          fields.metadata = JSON.parse(value) as unknown;
        } catch {
          reasons.push('metadata: must be a JSON object, e.g. {"room": "hall"}');
        }
      } else {
        fields[column] = value;
      }
    });
    rows.push({ line, fields, ...(reasons.length > 0 ? { problems: reasons } : {}) });
  }
  return { rows, rejected };
}

interface Accepted {
  line: number;
  row: NewDeviceRow;
  /** The file gave the speaker's signing secret (a device moved from elsewhere). */
  secretGiven: boolean;
}

const INSERT_BATCH = 1_000;
const LOOKUP_BATCH = 1_000;

export class DeviceImporter {
  constructor(
    private readonly db: Db,
    private readonly devices: DevicesService,
  ) {}

  /** Checks every row; writes the accepted ones unless a row was rejected (and not `partial`) or `dryRun`. */
  async import(
    file: { rows: SourceRow[]; rejected: RejectedRow[]; format: DeviceFileFormat; source: string },
    options: { partial: boolean; dryRun?: boolean; trace: Trace },
  ): Promise<ImportReport> {
    const rejected = [...file.rejected];
    const accepted: Accepted[] = [];
    const firstLine = new Map<string, number>();
    // Outbound checks resolve host names: one lookup per host, not per row.
    const endpointChecks = new Map<string, Promise<string | null>>();
    for (const { line, fields, problems = [] } of file.rows) {
      const reasons = [...problems, ...(await this.check(fields, endpointChecks))];
      const deviceId = typeof fields.device_id === 'string' ? fields.device_id : undefined;
      if (deviceId !== undefined && reasons.length === 0) {
        const earlier = firstLine.get(deviceId);
        if (earlier !== undefined) reasons.push(`device_id: ${deviceId} is also on line ${earlier}`);
        else firstLine.set(deviceId, line);
      }
      if (reasons.length > 0) {
        rejected.push({ line, ...(deviceId !== undefined ? { device_id: deviceId } : {}), reasons });
        continue;
      }
      accepted.push({ line, row: this.toRow(fields), secretGiven: fields.signing_secret !== undefined });
    }
    await this.rejectRegistered(this.db, accepted, rejected);

    const report = (committed: boolean, rows: Accepted[]): ImportReport => {
      const byType: Partial<Record<DeviceType, number>> = {};
      for (const { row } of rows) byType[row.type as DeviceType] = (byType[row.type as DeviceType] ?? 0) + 1;
      return {
        format: file.format,
        rows: file.rows.length + file.rejected.length,
        imported: committed ? rows.length : 0,
        rejected: rejected.sort((a, b) => a.line - b.line),
        committed,
        secretsGenerated: rows.filter(({ row, secretGiven }) => row.signing_secret !== null && !secretGiven).length,
        byType,
      };
    };
    if (options.dryRun || (rejected.length > 0 && !options.partial) || accepted.length === 0) {
      return report(false, accepted);
    }
    const written = await this.db.transaction().execute(async (trx) => {
      const inserted: Accepted[] = [];
      for (let start = 0; start < accepted.length; start += INSERT_BATCH) {
        const batch = accepted.slice(start, start + INSERT_BATCH);
        const returned = await trx
          .insertInto('devices')
          .values(batch.map(({ row }) => row))
          .onConflict((conflict) => conflict.column('device_id').doNothing())
          .returning('device_id')
          .execute();
        const ids = new Set(returned.map(({ device_id }) => device_id));
        for (const entry of batch) {
          if (ids.has(entry.row.device_id)) inserted.push(entry);
          else rejected.push({ line: entry.line, device_id: entry.row.device_id, reasons: [`device_id: ${entry.row.device_id} was registered meanwhile`] });
        }
      }
      // Registered by someone else while this import ran: all or nothing still holds.
      if (inserted.length < accepted.length && !options.partial) throw new ImportRolledBack();
      const counts = report(true, inserted);
      await appendEvent(trx, {
        type: 'device.imported',
        status: 'ok',
        correlationId: options.trace.correlationId,
        requestId: options.trace.requestId,
        details: {
          source: file.source,
          format: file.format,
          imported: inserted.length,
          rejected: rejected.length,
          by_type: counts.byType,
          rejected_lines: rejected.slice(0, 100).map((row) => row.line),
          by: options.trace.actor,
        },
      });
      return inserted;
    }).catch((error: unknown) => {
      if (error instanceof ImportRolledBack) return undefined;
      throw error;
    });
    return written ? report(true, written) : report(false, accepted);
  }

  /** Reasons the row would be refused by `POST /api/v1/devices`; empty when it is fine. */
  private async check(fields: Record<string, unknown>, endpointChecks: Map<string, Promise<string | null>>): Promise<string[]> {
    if (!checkRow(fields)) {
      return fieldErrors('row', checkRow.errors ?? []).map(({ field, message }) => `${field.replace(/^row\.?/, '') || 'row'}: ${message}`);
    }
    const unsafe = findUnsafeValue(fields);
    if (unsafe) return [`${unsafe.instancePath.replace(/^\//, '').replace(/\//g, '.') || 'row'}: ${unsafe.message}`];
    const reasons: string[] = [];
    const row = fields as CreateDeviceBody & { signing_secret?: string };
    try {
      this.devices.msisdnOf('msisdn', row.msisdn);
    } catch (error) {
      reasons.push(reasonOf(error));
    }
    const key = `${row.type}\u0000${row.endpoint ?? ''}`;
    let endpoint = endpointChecks.get(key);
    if (!endpoint) {
      endpoint = this.devices.checkEndpoint(row.type, row.endpoint ?? null, 'endpoint');
      endpointChecks.set(key, endpoint);
      // Kept rejected: each row that uses it reports it below.
      endpoint.catch(() => {});
    }
    try {
      await endpoint;
    } catch (error) {
      reasons.push(reasonOf(error));
    }
    if (row.signing_secret !== undefined && !deviceTypes[row.type].signingSecret) {
      reasons.push(`signing_secret: a ${row.type} receives no notifications, so it has no signing secret`);
    }
    return reasons;
  }

  private toRow(fields: Record<string, unknown>): NewDeviceRow {
    const row = fields as CreateDeviceBody & { signing_secret?: string };
    const secret = row.signing_secret ?? (deviceTypes[row.type].signingSecret ? generateSigningSecret() : null);
    return {
      device_id: row.device_id,
      type: row.type,
      msisdn: this.devices.msisdnOf('msisdn', row.msisdn),
      name: row.name ?? null,
      endpoint: row.endpoint ?? null,
      metadata: JSON.stringify(row.metadata ?? {}),
      signing_secret: secret,
      enabled: row.enabled ?? true,
    };
  }

  /** Rows whose device_id is registered already are rejected as duplicates. */
  private async rejectRegistered(db: DbOrTrx, accepted: Accepted[], rejected: RejectedRow[]): Promise<void> {
    const registered = new Set<string>();
    for (let start = 0; start < accepted.length; start += LOOKUP_BATCH) {
      const ids = accepted.slice(start, start + LOOKUP_BATCH).map(({ row }) => row.device_id);
      const rows = await db.selectFrom('devices').select('device_id').where('device_id', 'in', ids).execute();
      for (const { device_id } of rows) registered.add(device_id);
    }
    if (registered.size === 0) return;
    const kept = accepted.filter(({ line, row }) => {
      if (!registered.has(row.device_id)) return true;
      rejected.push({
        line,
        device_id: row.device_id,
        reasons: [`device_id: ${row.device_id} is already registered (an import only adds devices; change one with PATCH /api/v1/devices/{device_id})`],
      });
      return false;
    });
    accepted.splice(0, accepted.length, ...kept);
  }
}

class ImportRolledBack extends Error {}

function reasonOf(error: unknown): string {
  if (error instanceof ApiProblem) {
    const first = error.errors?.[0];
    return first ? `${first.field}: ${first.message}` : error.detail;
  }
  throw error;
}
