import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { onPostgres } from '../support/database.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

// The demo brings its own gateway on its own embedded database, whatever the test database is,
// so running it again in the PostgreSQL project would test nothing new.
describe.skipIf(onPostgres)('npm run demo (runs in the pglite project only)', () => {
  it('plays both scenarios end to end, tells the story, leaves nothing behind and exits 0', { timeout: 180_000 }, async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, DEMO_TIMEOUT_S: '150' };
    delete env.TEST_DB;
    const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code, `${stdout}\n${stderr}`).toBe(0);

    // Scenario 1: the speaker heard the whole call, signed; the event log tells it too.
    const scenario1 = stdout.slice(stdout.indexOf('Scenario 1'), stdout.indexOf('Scenario 2'));
    for (const type of ['incoming_call.ringing', 'incoming_call.answered', 'incoming_call.ended']) {
      expect(scenario1).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  speaker  received ${type}, signature valid`));
    }
    expect(scenario1).toMatch(/gateway {2}incoming_call\.received/);
    expect(scenario1).toMatch(/gateway {2}notification\.sent/);
    // Scenario 2: busy first number, then answered and confirmed.
    const scenario2 = stdout.slice(stdout.indexOf('Scenario 2'));
    expect(scenario2).toMatch(/call\.failed .* to=\+79165550101 .*status=busy cause=USER_BUSY/);
    expect(scenario2).toMatch(/gateway {2}call\.acknowledged/);
    expect(scenario2).toContain('alarm resolved (confirmed by +79161234567)');
    expect(stdout).toContain('Both scenarios completed');

    // Nothing left running, nothing left on disk.
    const pid = Number(/\(pid (\d+);/.exec(stdout)?.[1]);
    expect(() => process.kill(pid, 0)).toThrow();
    const dataDir = /removed (\S+)\.$/m.exec(stdout)?.[1];
    expect(dataDir).toMatch(/iot-gateway-demo-/);
    expect(existsSync(dataDir!)).toBe(false);
  });
});
