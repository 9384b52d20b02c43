/**
 * The `iot-gateway` command (`npx iot-gateway`, `npm run cli --`): finds the command named by the
 * first words of argv, prints `--help` for any of them, and turns what went wrong into an exit
 * code scripts can rely on (see ExitCode).
 */
import { ConfigError, loadConfig, type Config } from '../config/config.js';
import { ApiProblem } from '../http/problems.js';
import { DataDirInUseError } from '../storage/database.js';
import { ExitCode, exitCodesHelp, UsageError, type Command, type CommandContext } from './command.js';
import { devicesCommands } from './devices.js';
import { keysCommands } from './keys.js';
import { serveCommands } from './serve.js';
import { simulateCommands } from './simulate.js';

export const commands: readonly Command[] = [...serveCommands, ...keysCommands, ...devicesCommands, ...simulateCommands];

const usage = `Usage: iot-gateway <command> [options]      (iot-gateway <command> --help for its details)

Commands:
${commands.map((command) => `  ${command.synopsis}`).join('\n')}

Configuration comes from environment variables: docs/configuration.md.
${exitCodesHelp}`;

function groupUsage(group: string): string {
  const members = commands.filter((command) => command.path[0] === group);
  return `Usage: iot-gateway ${group} <${members.map((command) => command.path[1]).join('|')}> [options]

${members.map((command) => `  ${command.synopsis}`).join('\n')}

iot-gateway ${group} <command> --help for the details of one.`;
}

const isHelp = (word: string | undefined) => word === '--help' || word === '-h' || word === 'help';

/** The command named by the first words of argv, and the rest of argv. */
function findCommand(argv: string[]): { command?: Command; rest: string[]; group?: string } {
  const [first, second] = argv;
  const exact = commands.find((command) => command.path.length === 2 && command.path[0] === first && command.path[1] === second);
  if (exact) return { command: exact, rest: argv.slice(2) };
  const single = commands.find((command) => command.path.length === 1 && command.path[0] === first);
  if (single) return { command: single, rest: argv.slice(1) };
  if (commands.some((command) => command.path[0] === first)) return { group: first!, rest: argv.slice(1) };
  return { rest: argv };
}

export async function main(argv: string[], io: Partial<Pick<CommandContext, 'stdout' | 'stderr' | 'env'>> = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const env = io.env ?? process.env;
  let config: Config | undefined;
  const context: CommandContext = { stdout, stderr, env, config: () => (config ??= loadConfig(env)) };
  try {
    if (argv.length === 0) argv = ['serve'];
    if (isHelp(argv[0])) {
      // `iot-gateway help devices import` reads as `iot-gateway devices import --help`.
      if (argv.length === 1) {
        stdout.write(`${usage}\n`);
        return ExitCode.ok;
      }
      argv = [...argv.slice(1), '--help'];
    }
    const { command, rest, group } = findCommand(argv);
    if (!command) {
      if (group !== undefined) {
        if (rest.length === 0 || isHelp(rest[0])) {
          (rest.length === 0 ? stderr : stdout).write(`${groupUsage(group)}\n`);
          return rest.length === 0 ? ExitCode.usage : ExitCode.ok;
        }
        throw new UsageError(`unknown command ${group} ${rest[0]}\n\n${groupUsage(group)}`);
      }
      throw new UsageError(`unknown command ${argv[0]}\n\n${usage}`);
    }
    if (rest.includes('--help') || rest.includes('-h')) {
      stdout.write(`${command.help}\n`);
      return ExitCode.ok;
    }
    try {
      return await command.run(rest, context);
    } catch (error) {
      if (error instanceof UsageError) throw new UsageError(`${error.message}\n\n${command.help}`);
      throw error;
    }
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) {
      stderr.write(`iot-gateway: ${error.message}\n`);
      return ExitCode.usage;
    }
    if (error instanceof DataDirInUseError || error instanceof ApiProblem) {
      stderr.write(`iot-gateway: ${error.message}\n`);
      return ExitCode.failed;
    }
    stderr.write(`iot-gateway: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return ExitCode.failed;
  }
}
