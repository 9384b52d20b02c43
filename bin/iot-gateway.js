#!/usr/bin/env node
// Runs the compiled gateway (dist/, from `npm run build`, which `npm ci` runs) when it is newer than
// every source file; otherwise the TypeScript sources through tsx, so the command works from a
// fresh clone, and right after an edit, with no build step.
import { readdirSync, statSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

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
