import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commands, main } from '../../src/cli/main.js';
import { createTestApp, ADMIN_KEY, type TestApp } from '../support/app.js';
import { onPostgres } from '../support/database.js';
import { runCli } from '../support/gateway-process.js';
import { deviceCsv } from '../support/device-files.js';

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

describe('iot-gateway --help', () => {
  it('documents every command and the exit codes; usage errors exit 2', async () => {
    const top = capture();
    expect(await main(['--help'], { stdout: top.stream })).toBe(0);
    expect(top.text()).toMatch(/Exit codes:[\s\S]*3 {2}devices import/);
    for (const command of commands) {
      expect(top.text()).toContain(command.path.join(' '));
      for (const argv of [[...command.path, '--help'], ['help', ...command.path]]) {
        const out = capture();
        expect(await main(argv, { stdout: out.stream, env: {} })).toBe(0);
        expect(out.text()).toContain(`Usage: iot-gateway ${command.path.join(' ')}`);
      }
    }
    const err = capture();
    expect(await main(['devices', 'frobnicate'], { stderr: err.stream, env: {} })).toBe(2);
    expect(err.text()).toContain('unknown command devices frobnicate');
    expect(await main(['devices', 'import'], { stderr: err.stream, env: {} })).toBe(2);
    expect(await main(['devices', 'export', '--colour'], { stderr: err.stream, env: {} })).toBe(2);
    expect(err.text()).toContain("Unknown option '--colour'");
  });
});

// These spawn the real command on its embedded database, as a user runs it; the database under
// test is the command's own, so the PostgreSQL project has nothing to add (device import itself
// runs on both in test/devices/device-import.test.ts).
describe.skipIf(onPostgres)('the iot-gateway command (runs in the pglite project only)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cli-commands-'));
  const env = { DATA_DIR: path.join(dir, 'data'), OUTBOUND_ALLOW_HOSTS: '127.0.0.1' };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // Two commands, each starting a process and opening the embedded database (all or nothing is
  // shown in process on both databases in test/devices/device-import.test.ts).
  it('imports 10,000 devices from CSV, names the 3 bad lines and why, and exports the rest again', { timeout: 180_000 }, async () => {
    const file = path.join(dir, 'devices.csv');
    writeFileSync(file, deviceCsv(10_000, 'cli').text);

    const partial = await runCli(['devices', 'import', file, '--partial'], env);
    expect(partial.code).toBe(3);
    expect(partial.stdout).toContain('Read 10000 rows from devices.csv (CSV).');
    expect(partial.stdout).toContain('Rejected 3 rows:');
    expect(partial.stdout).toMatch(/line 1234 \(cli-bad-number\): msisdn: must be a phone number/);
    expect(partial.stdout).toMatch(/line 5000 \(cli-bad-type\): type: must be one of: speaker, sensor_smoke/);
    expect(partial.stdout).toContain('line 9999 (cli-no-endpoint): endpoint: is required for a speaker');
    expect(partial.stdout).toMatch(/Imported 9997 devices \(1000 speaker, 8997 sensor_smoke\) in one transaction/);
    expect(partial.stdout).not.toContain('whsec_');

    const exported = await runCli(['devices', 'export', '--format', 'jsonl'], env);
    expect(exported.code).toBe(0);
    const lines = exported.stdout.trim().split('\n');
    expect(lines).toHaveLength(9_997);
    expect(JSON.parse(lines[0]!)).toMatchObject({ device_id: 'cli-0', type: 'speaker', msisdn: '+79161000000', metadata: { room: 'hall' } });
    expect(exported.stdout).not.toContain('whsec_');
    expect(exported.stderr).toContain('Exported 9997 devices.');
  });

  describe('simulate, against a running gateway', () => {
    let gateway: TestApp;
    let url: string;
    beforeAll(async () => {
      gateway = await createTestApp();
      url = await gateway.app.listen({ port: 0, host: '127.0.0.1' });
      await gateway.request({ method: 'POST', url: '/api/v1/devices', payload: { device_id: 'sim-smoke', type: 'sensor_smoke', msisdn: '+79161234567' } });
    });
    afterAll(async () => gateway.close());

    it('reports calls and events over HTTP; exit 0 accepted, 4 refused, 1 unreachable', { timeout: 60_000 }, async () => {
      // The real command once; the other cases run the same code in this process, to save process starts.
      const ringing = await runCli(['simulate', 'call', '--from', '+74951234567', '--to', '8 916 123-45-67', '--call-id', 'sim-1', '--url', url], {
        IOT_GATEWAY_API_KEY: ADMIN_KEY,
      });
      expect(ringing.code).toBe(0);
      expect(ringing.stdout).toContain('POST /api/v1/incoming-calls -> 202');
      expect(ringing.stdout).toContain('"state": "ringing"');

      const simulate = async (args: string[]) => {
        const stdout = capture();
        const stderr = capture();
        const code = await main(['simulate', ...args, '--url', url], { stdout: stdout.stream, stderr: stderr.stream, env: {} });
        return { code, stdout: stdout.text(), stderr: stderr.text() };
      };
      const ended = await simulate(['call', '--from', '+74951234567', '--to', '+79161234567', '--call-id', 'sim-1', '--state', 'ended', '--key', ADMIN_KEY]);
      expect(ended).toMatchObject({ code: 0, stdout: expect.stringContaining('"state": "ended"') as string });
      const event = await simulate(['event', '--device', 'sim-smoke', '--type', 'test', '--key', ADMIN_KEY]);
      expect(event).toMatchObject({ code: 0, stdout: expect.stringContaining('POST /api/v1/webhooks/events -> 202') as string });

      const unknown = await simulate(['event', '--device', 'nobody', '--type', 'smoke', '--key', ADMIN_KEY]);
      expect(unknown).toMatchObject({ code: 4, stderr: expect.stringContaining('-> 404') as string });
      expect((await simulate(['call', '--from', '1', '--to', '2', '--key', 'not-a-key-at-all'])).code).toBe(4);
      expect((await simulate(['call', '--from', '1', '--to', '2'])).code).toBe(2); // no key anywhere

      await gateway.app.close();
      const unreachable = await simulate(['event', '--device', 'sim-smoke', '--type', 'test', '--key', ADMIN_KEY]);
      expect(unreachable).toMatchObject({ code: 1, stderr: expect.stringContaining('cannot reach the gateway') as string });
    });
  });
});
