/** `keys create|list|revoke`. */
import { ApiKeyService } from '../api-keys/api-keys-service.js';
import { roles, type Role } from '../auth/roles.js';
import { cliTrace, ExitCode, parseOptions, UsageError, withStorage, type Command } from './command.js';

export const keysCommands: Command[] = [
  {
    path: ['keys', 'create'],
    synopsis: 'keys create           Create an API key; prints it once.',
    help: `Usage: iot-gateway keys create --role ROLE --name NAME

Creates an API key and prints it, the only time it is ever shown (only its hash is stored).
  --role ROLE   ${roles.join(', ')}
  --name NAME   who or what uses the key ("vendor cloud", "TAS")
With the embedded database, stop the gateway first: one process per data folder.`,
    async run(args, context) {
      const { values } = parseOptions(args, { role: { type: 'string' }, name: { type: 'string' } });
      if (!values.role || !roles.includes(values.role as Role)) throw new UsageError(`--role must be one of ${roles.join(', ')}`);
      if (!values.name) throw new UsageError('--name is required (who or what uses the key)');
      const config = context.config();
      const created = await withStorage(config, (storage) =>
        new ApiKeyService(storage.db, config.ADMIN_API_KEY).create({ role: values.role as Role, name: values.name! }, cliTrace('keys')),
      );
      context.stdout.write(`Created ${created.row.role} key ${created.row.id} "${created.row.name}". The key (shown only now):\n${created.key}\n`);
      return ExitCode.ok;
    },
  },
  {
    path: ['keys', 'list'],
    synopsis: 'keys list             List API keys (never the keys themselves).',
    help: `Usage: iot-gateway keys list

One key per line, tab-separated: id, role, key prefix, created, active or revoked, name.`,
    async run(args, context) {
      parseOptions(args, {});
      const config = context.config();
      const rows = await withStorage(config, (storage) => new ApiKeyService(storage.db, config.ADMIN_API_KEY).list(undefined, 10_000));
      for (const row of rows) {
        context.stdout.write(
          `${row.id}\t${row.role}\t${row.key_prefix}…\t${row.created_at.toISOString()}\t${row.revoked_at ? `revoked ${row.revoked_at.toISOString()}` : 'active'}\t${row.name}\n`,
        );
      }
      return ExitCode.ok;
    },
  },
  {
    path: ['keys', 'revoke'],
    synopsis: 'keys revoke ID        Revoke an API key, at once.',
    help: `Usage: iot-gateway keys revoke ID

Revokes the key with that id (see keys list). The last admin key cannot be revoked while
ADMIN_API_KEY is unset: nobody could get back in.`,
    async run(args, context) {
      const { positionals } = parseOptions(args, {}, true);
      const id = Number(positionals[0]);
      if (positionals.length !== 1 || !Number.isInteger(id) || id < 1) throw new UsageError('keys revoke takes the id of the key (see keys list)');
      const config = context.config();
      await withStorage(config, (storage) => new ApiKeyService(storage.db, config.ADMIN_API_KEY).revoke(id, cliTrace('keys')));
      context.stdout.write(`Revoked key ${id}.\n`);
      return ExitCode.ok;
    },
  },
];
