import { configDefaults, defineConfig } from 'vitest/config';

// The suite runs on embedded PGlite always, and on the real PostgreSQL too when
// TEST_DATABASE_URL is set (test/support/database.ts prints which one each file uses).
const onPostgres = Boolean(process.env.TEST_DATABASE_URL);
const databases = onPostgres ? ['pglite', 'postgres'] : ['pglite'];

// Files that run gateway processes, a browser or a CLI of their own, and measure time across
// restarts: they run one at a time, after the rest, so nothing else takes their CPU. The rest run
// two files at a time (the machines have two cores and these files mostly wait on I/O).
const processFiles = [
  'test/chaos/**/*.test.ts',
  'test/alarms/gateway-crash.test.ts',
  'test/alarms/alarms-through-freeswitch.test.ts',
  'test/cli/cli-commands.test.ts',
  'test/cli/gateway-process.test.ts',
  'test/console/console.e2e.test.ts',
  'test/demo/demo.test.ts',
];

// Files that never touch a database: run once, in the pglite project.
const databaseFreeFiles = [
  'test/alarms/escalation-rules.test.ts',
  'test/cli/launcher.test.ts',
  'test/config/config.test.ts',
  'test/notifications/delivery.test.ts',
  'test/notifications/outbound-policy.test.ts',
  'test/phone-numbers/msisdn.test.ts',
  'test/storage/errors.test.ts',
  'test/telephony/*.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // CI also writes a machine-readable summary (.ci/run prints its totals).
    reporters: process.env.CI ? ['default', 'json'] : ['default'],
    outputFile: { json: '.test-results/vitest.json' },
    projects: databases.flatMap((database, index) => [
      {
        extends: true as const,
        test: {
          name: database,
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...processFiles, ...(database === 'pglite' ? [] : databaseFreeFiles)],
          env: { TEST_DB: database },
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true as const,
        test: {
          name: `${database}-processes`,
          include: processFiles,
          env: { TEST_DB: database },
          maxWorkers: 1,
          sequence: { groupOrder: 1 + index },
        },
      },
    ]),
  },
});
