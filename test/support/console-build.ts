/**
 * The end-to-end tests drive the built console. `npm ci` builds it (prepare); a run after editing
 * console/ rebuilds it here when console/dist is missing or older than its sources.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const consoleDir = path.resolve(import.meta.dirname, '../../console');
export const consoleDist = path.join(consoleDir, 'dist');

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'dist' || entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : statSync(full).mtimeMs);
  }
  return newest;
}

export function ensureConsoleBuilt(): void {
  const index = path.join(consoleDist, 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newestSource(consoleDir)) return;
  console.log('console/dist is missing or older than console/: running `npm run build`');
  execFileSync('npm', ['run', 'build'], { cwd: path.dirname(consoleDir), stdio: 'inherit' });
}
