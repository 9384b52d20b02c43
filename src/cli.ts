/**
 * The `iot-gateway` command: `serve` (default), `migrate`, `keys create|list|revoke`.
 * Exit codes: 0 done, 1 failed, 2 wrong usage or configuration.
 */
import { parseArgs } from 'node:util';
import { ApiKeyService } from './api-keys/api-keys-service.js';
import { roles, type Role } from './auth/roles.js';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { createLogger, openMigratedStorage, serve } from './server.js';
import { DataDirInUseError } from './storage/database.js';

const usage = `Usage: iot-gateway <command> [options]

Commands:
  serve                                  Run the gateway (the default).
  migrate                                Apply database migrations and exit.
  keys create --role ROLE --name NAME    Create an API key (roles: ${roles.join(', ')}); prints the key once.
  keys list                              List API keys (never the keys themselves).
  keys revoke ID                         Revoke an API key.

Configuration comes from environment variables; see README.md.`;

class UsageError extends Error {}

async function withServices<T>(config: Config, work: (apiKeys: ApiKeyService) => Promise<T>): Promise<T> {
  const logger = createLogger({ ...config, LOG_LEVEL: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL });
  const storage = await openMigratedStorage(config, logger);
  try {
    return await work(new ApiKeyService(storage.db, config.ADMIN_API_KEY));
  } finally {
    await storage.close();
  }
}

async function keys(config: Config, args: string[]): Promise<void> {
  const [action, ...rest] = args;
  const trace = { correlationId: `cli-${Date.now()}`, actor: 'command line' };
  if (action === 'create') {
    const { values } = parseArgs({ args: rest, options: { role: { type: 'string' }, name: { type: 'string' } } });
    if (!values.role || !roles.includes(values.role as Role)) throw new UsageError(`--role must be one of ${roles.join(', ')}`);
    if (!values.name) throw new UsageError('--name is required (who or what uses the key)');
    const created = await withServices(config, (apiKeys) => apiKeys.create({ role: values.role as Role, name: values.name! }, trace));
    process.stdout.write(`Created ${created.row.role} key ${created.row.id} "${created.row.name}". The key (shown only now):\n${created.key}\n`);
    return;
  }
  if (action === 'list') {
    const rows = await withServices(config, (apiKeys) => apiKeys.list(undefined, 10_000));
    for (const row of rows) {
      process.stdout.write(
        `${row.id}\t${row.role}\t${row.key_prefix}…\t${row.created_at.toISOString()}\t${row.revoked_at ? `revoked ${row.revoked_at.toISOString()}` : 'active'}\t${row.name}\n`,
      );
    }
    return;
  }
  if (action === 'revoke') {
    const id = Number(rest[0]);
    if (!Number.isInteger(id) || id < 1) throw new UsageError('keys revoke takes the id of the key (see keys list)');
    await withServices(config, (apiKeys) => apiKeys.revoke(id, trace));
    process.stdout.write(`Revoked key ${id}.\n`);
    return;
  }
  throw new UsageError('keys takes create, list or revoke');
}

export async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv;
  try {
    if (command === '--help' || command === '-h' || command === 'help' || rest.includes('--help')) {
      process.stdout.write(`${usage}\n`);
      return 0;
    }
    const config = loadConfig();
    switch (command) {
      case 'serve':
        await serve(config);
        return 0;
      case 'migrate': {
        const logger = createLogger(config);
        const storage = await openMigratedStorage(config, logger);
        await storage.close();
        return 0;
      }
      case 'keys':
        await keys(config, rest);
        return 0;
      default:
        throw new UsageError(`unknown command ${command}`);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`iot-gateway: ${error.message}\n\n${usage}\n`);
      return 2;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`iot-gateway: ${error.message}\n`);
      return 2;
    }
    if (error instanceof DataDirInUseError) {
      process.stderr.write(`iot-gateway: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`iot-gateway: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
if (code !== 0) process.exit(code);
