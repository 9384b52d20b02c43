/** Runs the real gateway as a child process, the way `npm start` does, for restart and crash tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../bin/iot-gateway.js', import.meta.url));

export interface GatewayProcess {
  process: ChildProcess;
  baseUrl: string;
  /** The admin key printed on first start, if one was. */
  printedAdminKey: string | undefined;
  output(): string;
  /** Sends the signal and waits for the exit; resolves with the exit code (or signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export async function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, LOG_FORMAT: 'json', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  return { code, stdout, stderr };
}

export async function startGateway(env: Record<string, string>, timeoutMs = 60_000): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [cli, 'serve'], {
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = once(child, 'exit');
  const baseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      // Not left running behind the failed test.
      child.kill('SIGKILL');
      reject(new Error(`gateway did not start within ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    let started = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      // The log keeps coming (one JSON line per request and domain step): once started, only keep it.
      if (started) return;
      const match = /is running on (http:\/\/\S+)/.exec(output);
      if (match) {
        started = true;
        clearTimeout(timer);
        resolve(match[1]!.replace('localhost', '127.0.0.1'));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`gateway exited before it started:\n${output}`));
    });
  });
  return {
    process: child,
    baseUrl,
    printedAdminKey: /^\s+(tig_[A-Za-z0-9_-]{43})\s*$/m.exec(output)?.[1],
    output: () => output,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode ?? child.signalCode!;
      child.kill(signal);
      const [code, signalName] = (await exited) as [number | null, string | null];
      return code ?? signalName ?? -1;
    },
  };
}
