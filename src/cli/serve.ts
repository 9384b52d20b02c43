/** `serve` and `migrate`. */
import { createLogger, openMigratedStorage, serve } from '../server.js';
import { ExitCode, parseOptions, type Command } from './command.js';

export const serveCommands: Command[] = [
  {
    path: ['serve'],
    synopsis: 'serve                 Run the gateway (the default command).',
    help: `Usage: iot-gateway serve

Runs the gateway: opens the database (PostgreSQL with DATABASE_URL, else the embedded one in
DATA_DIR), applies migrations, listens on HOST:PORT and prints where to find it. On the first
start it creates an admin API key and prints it once. SIGINT/SIGTERM stop it gracefully (exit 0).
Configuration: environment variables, see docs/configuration.md.`,
    async run(args, context) {
      parseOptions(args, {});
      await serve(context.config());
      return ExitCode.ok;
    },
  },
  {
    path: ['migrate'],
    synopsis: 'migrate               Apply database migrations and exit.',
    help: `Usage: iot-gateway migrate

Applies the migrations the database lacks (src/storage/migrations) and exits. Several gateways
may migrate at once: they take turns and only the first applies anything.`,
    async run(args, context) {
      parseOptions(args, {});
      const config = context.config();
      const storage = await openMigratedStorage(config, createLogger(config));
      await storage.close();
      return ExitCode.ok;
    },
  },
];
