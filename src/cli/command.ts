/** What every command of the `iot-gateway` CLI shares: exit codes, usage errors, argument parsing. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { Config } from '../config/config.js';
import { createLogger, openMigratedStorage } from '../server.js';
import type { Storage } from '../storage/database.js';

/** Exit codes scripts can rely on. */
export const ExitCode = {
  /** Done. */
  ok: 0,
  /** Failed: the database, the network, or anything unexpected (the message says what). */
  failed: 1,
  /** Wrong usage or invalid configuration; nothing was done. */
  usage: 2,
  /** `devices import`: rows were rejected (listed with their line numbers). */
  rejectedRows: 3,
  /** `simulate`: the gateway refused the request (4xx); its problem+json is printed. */
  refused: 4,
} as const;

export const exitCodesHelp = `Exit codes:
  0  done
  1  failed (database, network, the gateway answered 5xx, anything unexpected)
  2  wrong usage or invalid configuration: nothing was done
  3  devices import: rows were rejected (nothing imported unless --partial)
  4  simulate: the gateway refused the request (4xx)`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface CommandContext {
  /** The configuration from the environment, read when a command needs it (throws ConfigError). */
  config(): Config;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
}

export interface Command {
  /** Words that select it: ['devices', 'import']. */
  path: readonly string[];
  /** One line for the command list. */
  synopsis: string;
  /** The full `--help` text. */
  help: string;
  run(args: string[], context: CommandContext): Promise<number>;
}

/** parseArgs, with its errors turned into usage errors. */
export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Opens the configured database, migrated, for a command; logs only warnings unless LOG_LEVEL asks for more. */
export async function withStorage<T>(config: Config, work: (storage: Storage) => Promise<T>): Promise<T> {
  const logger = createLogger({ ...config, LOG_LEVEL: config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL });
  const storage = await openMigratedStorage(config, logger);
  try {
    return await work(storage);
  } finally {
    await storage.close();
  }
}

/** Where a command's changes come from, in the event log. */
export function cliTrace(command: string) {
  return { correlationId: `cli-${command}-${Date.now()}`, actor: 'command line' };
}
