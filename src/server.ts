/**
 * Runs the gateway: opens the database (PostgreSQL or the embedded one), applies migrations,
 * builds the app, listens, prints where to find it, and shuts down gracefully on SIGINT/SIGTERM.
 */
import closeWithGrace from 'close-with-grace';
import pino, { type Logger } from 'pino';
import { hostname } from 'node:os';
import { buildApp } from './app.js';
import { consoleBuilt } from './console/console-routes.js';
import { instanceId, telephonyKind, type Config } from './config/config.js';
import { FreeSwitchTelephony } from './telephony/freeswitch/freeswitch-telephony.js';
import { MockTelephony } from './telephony/mock/mock-telephony.js';
import type { Telephony } from './telephony/telephony.js';
import { openStorage, type Storage } from './storage/database.js';
import { migrate } from './storage/migrate.js';

/** The process logger; `destination` (JSON lines) instead of stdout is for tests that read the log. */
export function createLogger(config: Config, destination?: pino.DestinationStream): Logger {
  const pretty = !destination && (config.LOG_FORMAT === 'pretty' || (config.LOG_FORMAT === 'auto' && process.stdout.isTTY));
  const options: pino.LoggerOptions = {
    level: config.LOG_LEVEL,
    // Keys must never reach a log line, whatever gets logged.
    redact: { paths: ['req.headers["x-api-key"]', 'req.headers.authorization', '*.key', '*.signing_secret', '*.password'], censor: '[redacted]' },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  };
  return destination ? pino(options, destination) : pino(options);
}

export async function openMigratedStorage(config: Config, logger: Logger): Promise<Storage> {
  const storage = await openStorage({ databaseUrl: config.DATABASE_URL, dataDir: config.DATA_DIR, poolSize: config.DATABASE_POOL_SIZE, preparedStatements: config.DATABASE_PREPARED_STATEMENTS });
  try {
    const applied = await migrate(storage);
    logger.info({ database: storage.kind, location: storage.location, applied }, applied.length ? 'migrations applied' : 'database schema up to date');
    return storage;
  } catch (error) {
    await storage.close();
    throw error;
  }
}

/** The phone switch the configuration asks for. */
export function createTelephony(config: Config, logger: Logger): Telephony {
  if (telephonyKind(config) === 'freeswitch') {
    const [, host, port] = /^tcp:\/\/([^\s/:]+):(\d{1,5})$/.exec(config.FREESWITCH_ESL_URL!)!;
    return new FreeSwitchTelephony({
      host: host!,
      port: Number(port),
      password: config.FREESWITCH_ESL_PASSWORD!,
      dialStringTemplate: config.FREESWITCH_DIAL_STRING,
      ttsEngine: config.FREESWITCH_TTS_ENGINE,
      ttsVoice: config.FREESWITCH_TTS_VOICE,
      promptFile: config.FREESWITCH_PROMPT_FILE,
      ackPromptFile: config.FREESWITCH_ACK_PROMPT_FILE,
      calleeHeader: config.FREESWITCH_CALLEE_HEADER,
      logger: logger.child({ component: 'freeswitch' }),
    });
  }
  return new MockTelephony({ logger: logger.child({ component: 'mock-telephony' }) });
}

export async function serve(config: Config): Promise<void> {
  const logger = createLogger(config);
  const storage = await openMigratedStorage(config, logger);
  const telephony = createTelephony(config, logger);
  const app = await buildApp({ config, storage, logger, telephony, instanceId: instanceId(config, hostname()) });
  const firstAdminKey = await app.services.apiKeys.ensureAdminKey();

  closeWithGrace({ delay: 10_000, logger }, async ({ signal, err }) => {
    if (err) logger.error({ err }, 'stopping after an unexpected error');
    else logger.info({ signal }, 'stopping');
    await app.close();
    await storage.close();
  });

  await app.listen({ port: config.PORT, host: config.HOST });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST;
  const base = `http://${host}:${port}`;
  const lines = [
    '',
    `  TAS IoT Gateway is running on ${base}`,
    `  Console:    ${base}/console/${consoleBuilt() ? '' : '   (not built yet: run npm run build)'}`,
    `  API docs:   ${base}/docs   (OpenAPI: ${base}/openapi.json)`,
    `  Health:     ${base}/healthz   Ready: ${base}/readyz`,
    `  Database:   ${storage.kind === 'pglite' ? `embedded PGlite in ${storage.location}` : `PostgreSQL ${storage.location}`}`,
    `  Telephony:  ${telephony.name === 'mock' ? 'mock (no FreeSWITCH configured; magic numbers in the README)' : `FreeSWITCH at ${config.FREESWITCH_ESL_URL}`}`,
  ];
  if (firstAdminKey) {
    lines.push(
      '',
      '  First start: an admin API key was created. It is shown only this once; keep it safe:',
      `      ${firstAdminKey}`,
      `  Try it:  curl -H 'X-API-Key: ${firstAdminKey}' ${base}/api/v1/devices`,
    );
  } else if (config.ADMIN_API_KEY) {
    lines.push('  Admin key:  the ADMIN_API_KEY from the environment');
  } else {
    lines.push('  Admin key:  stored earlier (create another with: npm run cli -- keys create --role admin --name NAME)');
  }
  // Written to the terminal directly, not to the log stream, so the key is not kept in log files.
  process.stdout.write(`${lines.join('\n')}\n\n`);
}
