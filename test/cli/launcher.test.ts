/**
 * bin/iot-gateway.js runs the compiled gateway (dist/) only while it is newer than every source
 * file, and the sources through tsx otherwise: an edit is never shadowed by an old build. Checked
 * on a copy of the launcher beside a stand-in dist/ and src/ that only say which one ran.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const root = mkdtempSync(path.join(tmpdir(), 'tig-launcher-'));
mkdirSync(path.join(root, 'bin'));
mkdirSync(path.join(root, 'dist'));
mkdirSync(path.join(root, 'src', 'storage'), { recursive: true });
copyFileSync(path.join(repo, 'bin', 'iot-gateway.js'), path.join(root, 'bin', 'iot-gateway.js'));
symlinkSync(path.join(repo, 'node_modules'), path.join(root, 'node_modules'));
writeFileSync(path.join(root, 'package.json'), '{ "type": "module" }\n');
writeFileSync(path.join(root, 'dist', 'cli.js'), "console.log('ran dist');\n");
writeFileSync(path.join(root, 'src', 'cli.ts'), "const from: string = 'src';\nconsole.log(`ran ${from}`);\n");
writeFileSync(path.join(root, 'src', 'storage', 'migrate.ts'), 'export {};\n');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const at = (file: string, seconds: number) => utimesSync(path.join(root, file), seconds, seconds);
const ran = () => spawnSync(process.execPath, [path.join(root, 'bin', 'iot-gateway.js')], { encoding: 'utf8', env: { ...process.env, GATEWAY_FROM_SOURCES: '' } }).stdout.trim();

describe('the gateway command (bin/iot-gateway.js)', () => {
  it('runs the sources while there is no build', () => {
    expect(ran()).toBe('ran src');
  });

  it('runs the build while it is newer than every source file, the sources once one is edited', () => {
    writeFileSync(path.join(root, 'dist', '.built'), 'stamp\n');
    at('src/cli.ts', 1_000);
    at('src/storage/migrate.ts', 1_000);
    at('dist/.built', 2_000);
    expect(ran()).toBe('ran dist');
    // A file deep in src/ edited after the build.
    at('src/storage/migrate.ts', 3_000);
    expect(ran()).toBe('ran src');
  });
});
