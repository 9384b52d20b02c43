/**
 * Bench processes: every peer, load generator and server runs in a process of its own, so the
 * gateway's figures are its own. A child announces itself with one `READY <json>` line on stdout
 * and, when it has a result, one `RESULT <json>` line before it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface BenchChild<Ready = unknown> {
  process: ChildProcess;
  ready: Ready;
  output(): string;
  /** Resolves with the RESULT line's value once the child exits. */
  result<R>(): Promise<R>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function announce(kind: 'READY' | 'RESULT', value: unknown): void {
  process.stdout.write(`${kind} ${JSON.stringify(value)}\n`);
}

/** Runs `bench/<script>` (TypeScript, through tsx) with `args`, and waits for its READY line. */
export async function startChild<Ready>(
  script: string,
  args: string[],
  options: { env?: Record<string, string>; nodeArgs?: string[]; timeoutMs?: number; waitReady?: boolean } = {},
): Promise<BenchChild<Ready>> {
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', fileURLToPath(new URL(`../${script}`, import.meta.url)), ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return watch<Ready>(child, options.timeoutMs ?? 180_000, options.waitReady ?? true);
}

/** Watches an already spawned child for READY/RESULT lines. */
export async function watch<Ready>(child: ChildProcess, timeoutMs: number, waitReady: boolean, readyPattern?: RegExp): Promise<BenchChild<Ready>> {
  let output = '';
  let stdout = '';
  const exited = once(child, 'exit');
  let ready: Ready | undefined;
  const readyPromise = new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child did not start within ${timeoutMs} ms:\n${output.slice(-4000)}`)), timeoutMs);
    const check = () => {
      if (ready !== undefined) return;
      const match = readyPattern ? readyPattern.exec(output) : /^READY (.*)$/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        ready = (readyPattern ? match[1] : JSON.parse(match[1]!)) as Ready;
        resolve(ready);
      }
    };
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
      check();
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (readyPattern) check();
    });
    void exited.then(() => {
      clearTimeout(timer);
      if (ready === undefined && waitReady) reject(new Error(`child exited before it was ready:\n${output.slice(-4000)}`));
    });
  });
  const value = waitReady ? await readyPromise : (undefined as Ready);
  return {
    process: child,
    ready: value,
    output: () => output,
    async result<R>() {
      const [code] = (await exited) as [number | null];
      const match = /^RESULT (.*)$/m.exec(stdout);
      if (!match) throw new Error(`child exited (${code}) without a result:\n${output.slice(-4000)}`);
      return JSON.parse(match[1]!) as R;
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
}
