#!/usr/bin/env node
// Runs the compiled gateway (dist/, from `npm run build`, which `npm ci` runs) when it is newer than
// every source file; otherwise the TypeScript sources through tsx, so the command works from a
// fresh clone, and right after an edit, with no build step.
import { readdirSync, statSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';
import v8 from 'node:v8';

// A long-running service keeps a steady footprint: the old generation may grow to 1.25x of what
// was live after the last full collection (V8 allows up to 4x while it allocates fast), before
// anything is loaded. GATEWAY_HEAP_GROWING_PERCENT overrides it; 0 leaves V8's own heuristics.
const heapGrowingPercent = Number(process.env.GATEWAY_HEAP_GROWING_PERCENT ?? 25);
if (Number.isInteger(heapGrowingPercent) && heapGrowingPercent > 0) v8.setFlagsFromString(`--heap-growing-percent=${heapGrowingPercent}`);

const stamp = new URL('../dist/.built', import.meta.url);
const sources = new URL('../src/', import.meta.url);

/** @param {URL} dir @returns {number} */
function newestIn(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const url = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    newest = Math.max(newest, entry.isDirectory() ? newestIn(url) : statSync(url).mtimeMs);
  }
  return newest;
}

function builtAt() {
  try {
    return statSync(stamp).mtimeMs;
  } catch {
    return undefined;
  }
}

const built = builtAt();
if (process.env.GATEWAY_FROM_SOURCES !== '1' && built !== undefined && newestIn(sources) <= built) {
  await import('../dist/cli.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli.ts');
}
