import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { onPostgres } from '../support/database.js';
import { runCli, startGateway } from '../support/gateway-process.js';

const dataDir = mkdtempSync(path.join(tmpdir(), 'gateway-process-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

// These start the gateway on its embedded database, exactly as `npm start` on a fresh clone does;
// the database under test is the gateway's own, so the PostgreSQL project has nothing to add here.
describe.skipIf(onPostgres)('the gateway process on embedded storage (runs in the pglite project only)', () => {
  it('starts with one command, prints an admin key once, and keeps devices across a restart', async () => {
    const first = await startGateway({ DATA_DIR: dataDir, ADMIN_API_KEY: '' });
    let key: string;
    try {
      expect(first.printedAdminKey).toMatch(/^tig_/);
      key = first.printedAdminKey!;
      expect((await fetch(`${first.baseUrl}/healthz`)).status).toBe(200);
      const ready = await fetch(`${first.baseUrl}/readyz`);
      expect(await ready.json()).toMatchObject({ status: 'ready', checks: { database: { ok: true } } });
      const created = await fetch(`${first.baseUrl}/api/v1/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': key },
        body: JSON.stringify({ device_id: 'survivor', type: 'sensor_smoke', msisdn: '+79161234567' }),
      });
      expect(created.status).toBe(201);
      // The key is printed on the terminal, never in a log line.
      const logLines = first.output().split('\n').filter((line) => line.startsWith('{'));
      expect(logLines.length).toBeGreaterThan(0);
      expect(logLines.join('\n')).not.toContain(key);
    } finally {
      expect(await first.stop('SIGTERM')).toBe(0);
    }

    const second = await startGateway({ DATA_DIR: dataDir, ADMIN_API_KEY: '' });
    try {
      expect(second.printedAdminKey).toBeUndefined();
      const device = await fetch(`${second.baseUrl}/api/v1/devices/survivor`, { headers: { 'x-api-key': key } });
      expect(device.status).toBe(200);
      expect(await device.json()).toMatchObject({ device_id: 'survivor', msisdn: '+79161234567' });
    } finally {
      await second.stop('SIGTERM');
    }
  });

  it('starts again at once after being killed (the data-folder lock of a dead process is taken over)', async () => {
    const killed = await startGateway({ DATA_DIR: dataDir, ADMIN_API_KEY: '' });
    expect(await killed.stop('SIGKILL')).toBe('SIGKILL');
    const startedAt = Date.now();
    const again = await startGateway({ DATA_DIR: dataDir, ADMIN_API_KEY: '' });
    try {
      // Without the pid check this waited ~15 s for the lock to go stale.
      expect(Date.now() - startedAt).toBeLessThan(10_000);
      expect((await fetch(`${again.baseUrl}/healthz`)).status).toBe(200);
    } finally {
      await again.stop('SIGTERM');
    }
  });

  it('creates, lists and revokes keys from the command line', async () => {
    const created = await runCli(['keys', 'create', '--role', 'webhook', '--name', 'vendor cloud'], { DATA_DIR: dataDir });
    expect(created.code).toBe(0);
    const key = /^(tig_\S+)$/m.exec(created.stdout)?.[1];
    expect(key).toBeDefined();
    const id = /key (\d+)/.exec(created.stdout)?.[1];
    const listed = await runCli(['keys', 'list'], { DATA_DIR: dataDir });
    expect(listed.stdout).toContain('vendor cloud');
    expect(listed.stdout).not.toContain(key);
    expect((await runCli(['keys', 'revoke', id!], { DATA_DIR: dataDir })).code).toBe(0);
    expect((await runCli(['keys', 'list'], { DATA_DIR: dataDir })).stdout).toMatch(/vendor cloud/);
  });

  it('names the bad variable and exits 2 on invalid configuration or usage', async () => {
    const badConfig = await runCli(['serve'], { DATA_DIR: dataDir, PORT: 'eighty' });
    expect(badConfig.code).toBe(2);
    expect(badConfig.stderr).toContain('PORT="eighty"');
    const badUsage = await runCli(['keys', 'create', '--role', 'root', '--name', 'x'], { DATA_DIR: dataDir });
    expect(badUsage.code).toBe(2);
    expect(badUsage.stderr).toContain('--role must be one of');
  });
});
