/**
 * Hot spots of a `node --cpu-prof` profile: self time per function (name, file, line), the
 * evidence behind each optimisation in docs/benchmarks.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  function: string;
  where: string;
  selfPercent: number;
}

export function hotSpots(file: string, top = 25): { file: string; totalMs: number; spots: HotSpot[]; byArea: Record<string, number> } {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<number, number>();
  let total = 0;
  profile.samples.forEach((id, index) => {
    const delta = profile.timeDeltas[index] ?? 0;
    self.set(id, (self.get(id) ?? 0) + delta);
    total += delta;
  });
  const grouped = new Map<string, { function: string; where: string; us: number }>();
  const byArea: Record<string, number> = {};
  for (const [id, us] of self) {
    const frame = byId.get(id)!.callFrame;
    const where = shorten(frame.url, frame.lineNumber);
    const key = `${frame.functionName}@${where}`;
    const entry = grouped.get(key) ?? { function: frame.functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    grouped.set(key, entry);
    const area = areaOf(frame.url, frame.functionName);
    byArea[area] = (byArea[area] ?? 0) + us;
  }
  const spots = [...grouped.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((entry) => ({ function: entry.function, where: entry.where, selfPercent: Math.round((entry.us / total) * 1000) / 10 }));
  for (const area of Object.keys(byArea)) byArea[area] = Math.round((byArea[area]! / total) * 1000) / 10;
  return { file: path.basename(file), totalMs: Math.round(total / 1000), spots, byArea };
}

function shorten(url: string, line: number): string {
  if (!url) return '(native)';
  const clean = url.replace(/^file:\/\//, '');
  const modules = clean.lastIndexOf('node_modules/');
  const short = modules >= 0 ? clean.slice(modules + 'node_modules/'.length) : clean.replace(/^.*?\/(src|bench|test)\//, '$1/');
  return `${short}:${line + 1}`;
}

/** Which part of the stack the time went to. */
function areaOf(url: string, name: string): string {
  if (!url) return name === '(idle)' ? 'idle' : name === '(garbage collector)' ? 'gc' : name === '(program)' ? 'program' : 'native';
  if (url.includes('node_modules/pg')) return 'pg driver';
  if (url.includes('node_modules/kysely')) return 'kysely';
  if (url.includes('node_modules/fastify') || url.includes('node_modules/find-my-way') || url.includes('node_modules/avvio') || url.includes('node_modules/light-my-request')) return 'fastify';
  if (url.includes('node_modules/pino')) return 'pino';
  if (url.includes('node_modules/ajv') || url.includes('node_modules/fast-json-stringify')) return 'validation/serialisation';
  if (url.includes('node_modules/@electric-sql')) return 'pglite';
  if (url.includes('node_modules/tsx') || url.includes('node_modules/esbuild')) return 'tsx';
  if (url.includes('node_modules/')) return 'other modules';
  if (url.startsWith('node:')) return 'node core';
  if (url.includes('/src/')) return 'gateway src';
  return 'other';
}

export function summarizeProfile(dir: string): ReturnType<typeof hotSpots>[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => hotSpots(path.join(dir, name)));
}
