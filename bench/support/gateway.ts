/** The gateway under test: the real process (`node bin/iot-gateway.js serve`), configured by environment. */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { repoRoot, watch, type BenchChild } from './child.js';

const cli = fileURLToPath(new URL('../../bin/iot-gateway.js', import.meta.url));

export interface BenchGateway {
  url: string;
  pid: number;
  child: BenchChild<string>;
  /** Peak resident memory so far (VmHWM), in MB. */
  peakRssMb(): number;
  stop(): Promise<void>;
}

export async function startBenchGateway(env: Record<string, string>, options: { cpuProfileDir?: string | undefined } = {}): Promise<BenchGateway> {
  // BENCH_GATEWAY_NODE_ARGS: V8 or Node flags for the gateway alone, to try them (S7's memory, say).
  const extra = process.env.BENCH_GATEWAY_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const nodeArgs = [...extra, ...(options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : [])];
  const child = spawn(process.execPath, [...nodeArgs, cli, 'serve'], {
    cwd: repoRoot,
    env: withoutEmpty({
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: process.env.BENCH_GATEWAY_LOG_LEVEL ?? 'warn',
      LOG_FORMAT: 'json',
      OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
      // A per-key rate limit may exist in the product: the bench measures the gateway, not the limit.
      RATE_LIMIT_PER_KEY: '0',
      ...env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // BENCH_GATEWAY_OUTPUT: a file that receives everything the gateway prints (its warnings, and
  // the output of flags such as --trace-gc), timestamped by the second of the bench it arrived in.
  const outputFile = process.env.BENCH_GATEWAY_OUTPUT;
  if (outputFile) {
    const started = Date.now();
    const keep = (chunk: Buffer) => appendFileSync(outputFile, chunk.toString().replace(/^(?=.)/gm, `[${((Date.now() - started) / 1000).toFixed(1)} s] `));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
  }
  const watched = await watch<string>(child, 180_000, true, /is running on (http:\/\/\S+)/);
  const pid = child.pid!;
  return {
    url: watched.ready.replace('localhost', '127.0.0.1'),
    pid,
    child: watched,
    peakRssMb: () => statusMb(pid, 'VmHWM'),
    async stop() {
      await watched.stop('SIGTERM');
    },
  };
}

export function statusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** An empty value means "unset" (DATABASE_URL for the embedded database). */
function withoutEmpty(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
}

/** CPU time (user + system) a process has used so far, in seconds. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
