// Compiles src/ to dist/ (tsc -p tsconfig.build.json), copies the SQL migrations beside the
// compiled migrator, and stamps the build with the time it started: bin/iot-gateway.js runs dist/
// only while no file in src/ is newer than that (a source edited meanwhile is never left out).
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const started = new Date();
rmSync('dist', { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
if (result.status !== 0) {
  rmSync('dist', { recursive: true, force: true });
  process.exit(result.status ?? 1);
}
cpSync('src/storage/migrations', 'dist/storage/migrations', { recursive: true });
writeFileSync('dist/.built', `${started.toISOString()}\n`);
utimesSync('dist/.built', started, started);
