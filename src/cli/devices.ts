/** `devices import FILE` and `devices export`. */
import { readFile } from 'node:fs/promises';
import { once } from 'node:events';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { deviceColumns, type DeviceFileFormat } from '../devices/device-file.js';
import { deviceTypeNames, type DeviceType } from '../devices/device-types.js';
import type { ImportReport } from '../devices/device-import.js';
import { cliTrace, ExitCode, parseOptions, UsageError, withStorage, type Command, type CommandContext } from './command.js';

function formatOption(value: string | undefined): DeviceFileFormat | undefined {
  if (value === undefined) return undefined;
  if (value === 'csv' || value === 'jsonl') return value;
  throw new UsageError('--format must be csv or jsonl');
}

async function write(stream: NodeJS.WritableStream, chunk: string): Promise<void> {
  if (!stream.write(chunk)) await once(stream, 'drain');
}

function printReport(report: ImportReport, source: string, context: CommandContext, options: { partial: boolean; dryRun: boolean }): void {
  const out = (line: string) => context.stdout.write(`${line}\n`);
  out(`Read ${report.rows} rows from ${source} (${report.format === 'csv' ? 'CSV' : 'JSON lines'}).`);
  if (report.rejected.length > 0) {
    out(`Rejected ${report.rejected.length} ${report.rejected.length === 1 ? 'row' : 'rows'}:`);
    for (const row of report.rejected) {
      out(`  line ${row.line}${row.device_id ? ` (${row.device_id})` : ''}: ${row.reasons.join('; ')}`);
    }
  }
  const types = Object.entries(report.byType)
    .map(([type, count]) => `${count} ${type}`)
    .join(', ');
  if (options.dryRun) {
    out(`Dry run: ${report.rows - report.rejected.length} rows would be imported${types ? ` (${types})` : ''}; nothing was written.`);
  } else if (report.committed) {
    out(`Imported ${report.imported} devices${types ? ` (${types})` : ''} in one transaction.`);
    if (report.secretsGenerated > 0) {
      out(
        `${report.secretsGenerated} ${report.secretsGenerated === 1 ? 'speaker' : 'speakers'} got a new signing secret. Give each speaker its own: ` +
          '`iot-gateway devices export --type speaker --with-secrets > speakers.csv` (keep that file safe).',
      );
    }
  } else if (report.rejected.length > 0 && report.rejected.length === report.rows) {
    out('Nothing was imported: no row was valid.');
  } else if (report.rejected.length > 0) {
    out(`Nothing was imported: an import is all or nothing. Fix the rows above, or add --partial to import the ${report.rows - report.rejected.length} valid rows and leave these out.`);
  } else {
    out('Nothing to import.');
  }
}

export const devicesCommands: Command[] = [
  {
    path: ['devices', 'import'],
    synopsis: 'devices import FILE   Register devices in bulk from CSV or JSON lines.',
    help: `Usage: iot-gateway devices import FILE [--format csv|jsonl] [--partial] [--dry-run]

Registers the devices of FILE (- reads standard input) in one transaction.
  CSV        a header row naming the columns, then one device per line:
             ${deviceColumns.join(',')}
             (device_id, type and msisdn required; empty cells are absent fields;
             enabled is true/false; metadata is a JSON object)
  JSON lines one JSON object per line, with the fields of POST /api/v1/devices
             (plus signing_secret)
The format follows the file name (.csv, .jsonl/.ndjson/.json), else its first character.

Every row is checked as POST /api/v1/devices checks it: device_id, type (${deviceTypeNames.join(', ')}),
msisdn (any spelling, read in DEFAULT_COUNTRY, stored in E.164), endpoint (required for a speaker,
refused for a sensor, subject to OUTBOUND_ALLOW_HOSTS). A device_id already registered, or twice
in the file, is rejected: an import adds devices, it never changes one. Each rejected row is
listed with its line number and reasons.

  --partial   import the valid rows even when some are rejected (default: all or nothing,
              a rejected row means nothing is imported)
  --dry-run   check and report only; write nothing

Speakers without a signing_secret column get a new secret, as the API gives them; the secrets
are not printed: \`iot-gateway devices export --with-secrets\` writes them out. The import is one
\`device.imported\` row in the event log.
Exit: 0 everything imported; 3 rows rejected (nothing imported unless --partial) or a file
that is not a device file (no header, unknown column); 1 failed.`,
    async run(args, context) {
      const { values, positionals } = parseOptions(
        args,
        { format: { type: 'string' }, partial: { type: 'boolean', default: false }, 'dry-run': { type: 'boolean', default: false } },
        true,
      );
      if (positionals.length !== 1) throw new UsageError('devices import takes one FILE (- for standard input)');
      const file = positionals[0]!;
      const config = context.config();
      // Loaded here, not at start: `serve` has no use for them.
      const { DeviceFileError, DeviceImporter, detectFormat, readDeviceFile } = await import('../devices/device-import.js');
      const { DevicesService } = await import('../devices/devices-service.js');
      const { OutboundPolicy } = await import('../notifications/outbound-policy.js');
      let content: string;
      try {
        content = file === '-' ? await text(process.stdin) : await readFile(file, 'utf8');
      } catch (error) {
        throw new UsageError(`cannot read ${file}: ${(error as Error).message}`);
      }
      const format = formatOption(values.format) ?? detectFormat(file === '-' ? undefined : file, content);
      const source = file === '-' ? 'standard input' : path.basename(file);
      let parsed;
      try {
        parsed = readDeviceFile(content, format);
      } catch (error) {
        if (error instanceof DeviceFileError) {
          context.stderr.write(`iot-gateway: ${file}: ${error.message}\nNothing was imported.\n`);
          return ExitCode.rejectedRows;
        }
        throw error;
      }
      const options = { partial: values.partial, dryRun: values['dry-run'] };
      const report = await withStorage(config, (storage) => {
        const devices = new DevicesService(storage.db, config.DEFAULT_COUNTRY, new OutboundPolicy(config.OUTBOUND_ALLOW_HOSTS));
        return new DeviceImporter(storage.db, devices).import({ ...parsed, format, source }, { ...options, trace: cliTrace('devices-import') });
      });
      printReport(report, source, context, options);
      return report.rejected.length > 0 ? ExitCode.rejectedRows : ExitCode.ok;
    },
  },
  {
    path: ['devices', 'export'],
    synopsis: 'devices export        Write every device as CSV or JSON lines (importable again).',
    help: `Usage: iot-gateway devices export [--format csv|jsonl] [--type TYPE] [--with-secrets]

Writes the registry to standard output, in registration order, in the columns devices import
reads: ${deviceColumns.filter((column) => column !== 'signing_secret').join(',')}.
  --format csv|jsonl   default csv
  --type TYPE          only devices of that type (${deviceTypeNames.join(', ')})
  --with-secrets       add each speaker's signing_secret (the output is then a secret itself:
                       do not leave it lying around)
Streams page by page, so any number of devices fits.`,
    async run(args, context) {
      const { values } = parseOptions(args, { format: { type: 'string' }, type: { type: 'string' }, 'with-secrets': { type: 'boolean', default: false } });
      const format = formatOption(values.format) ?? 'csv';
      if (values.type !== undefined && !deviceTypeNames.includes(values.type as DeviceType)) {
        throw new UsageError(`--type must be one of ${deviceTypeNames.join(', ')}`);
      }
      const withSecrets = values['with-secrets'];
      const config = context.config();
      const { devicePages, exportHeader, exportLine } = await import('../devices/device-export.js');
      let count = 0;
      await withStorage(config, async (storage) => {
        await write(context.stdout, exportHeader(format, withSecrets));
        for await (const page of devicePages(storage.db, { type: values.type })) {
          await write(context.stdout, page.map((row) => exportLine(row, format, withSecrets)).join(''));
          count += page.length;
        }
      });
      context.stderr.write(`Exported ${count} devices${withSecrets ? ', with their signing secrets: keep the output safe' : ''}.\n`);
      return ExitCode.ok;
    },
  },
];
