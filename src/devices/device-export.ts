/**
 * Export of the device registry as CSV or JSON lines, in the columns an import reads, so an
 * export can be imported again (into another gateway, say). Read page by page on the primary key
 * (keyset), so any number of devices streams in constant memory. Signing secrets are left out
 * unless asked for.
 */
import type { DbOrTrx } from '../storage/database.js';
import type { DeviceRow } from '../storage/schema.js';
import { deviceColumns, type DeviceFileFormat } from './device-file.js';

const PAGE = 1_000;

export async function* devicePages(db: DbOrTrx, filter: { type?: string | undefined } = {}): AsyncGenerator<DeviceRow[]> {
  let afterId = 0;
  for (;;) {
    let query = db.selectFrom('devices').selectAll().where('id', '>', afterId);
    if (filter.type !== undefined) query = query.where('type', '=', filter.type);
    const rows = await query.orderBy('id').limit(PAGE).execute();
    if (rows.length === 0) return;
    yield rows;
    afterId = rows.at(-1)!.id;
    if (rows.length < PAGE) return;
  }
}

function exportedFields(row: DeviceRow, withSecrets: boolean): Record<string, unknown> {
  return {
    device_id: row.device_id,
    type: row.type,
    msisdn: row.msisdn,
    ...(row.name !== null ? { name: row.name } : {}),
    ...(row.endpoint !== null ? { endpoint: row.endpoint } : {}),
    enabled: row.enabled,
    metadata: row.metadata,
    ...(withSecrets && row.signing_secret !== null ? { signing_secret: row.signing_secret } : {}),
  };
}

/** A CSV cell: quoted when it holds a comma, quote or line break (RFC 4180). */
function csvCell(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function exportColumns(withSecrets: boolean): readonly string[] {
  return withSecrets ? deviceColumns : deviceColumns.filter((column) => column !== 'signing_secret');
}

/** The header line of a CSV export (none for JSON lines). */
export function exportHeader(format: DeviceFileFormat, withSecrets: boolean): string {
  return format === 'csv' ? `${exportColumns(withSecrets).join(',')}\n` : '';
}

export function exportLine(row: DeviceRow, format: DeviceFileFormat, withSecrets: boolean): string {
  const fields = exportedFields(row, withSecrets);
  if (format === 'jsonl') return `${JSON.stringify(fields)}\n`;
  return `${exportColumns(withSecrets).map((column) => csvCell(fields[column])).join(',')}\n`;
}
