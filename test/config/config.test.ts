import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configurationReference, withConfigurationTable } from '../../src/config/config-docs.js';
import { ConfigError, ConfigSchema, loadConfig, secretSettings } from '../../src/config/config.js';

describe('configuration', () => {
  it('has working defaults: port 8080, embedded database in ./data', () => {
    expect(loadConfig({})).toMatchObject({ PORT: 8080, DATA_DIR: './data', LOG_LEVEL: 'info', BODY_LIMIT_BYTES: 1_048_576 });
    expect(loadConfig({}).DATABASE_URL).toBeUndefined();
  });

  it('reads numbers and names every bad variable, hiding secrets', () => {
    expect(loadConfig({ PORT: '9000', BODY_LIMIT_BYTES: '2048' })).toMatchObject({ PORT: 9000, BODY_LIMIT_BYTES: 2048 });
    let message = '';
    try {
      loadConfig({ PORT: '80a', LOG_LEVEL: 'loud', DATABASE_URL: 'mysql://u:secretpw@h/db', ADMIN_API_KEY: 'short', DEFAULT_COUNTRY: 'russia' });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    for (const name of ['PORT="80a"', 'LOG_LEVEL="loud"', 'DATABASE_URL=(hidden)', 'ADMIN_API_KEY=(hidden)', 'DEFAULT_COUNTRY="russia"']) {
      expect(message).toContain(name);
    }
    expect(message).toContain('must be one of fatal, error, warn, info');
    expect(message).not.toContain('secretpw');
    expect(message).not.toContain('short');
  });

  it('is documented in the README table exactly as the schema says (npm run docs:config)', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(withConfigurationTable(readme)).toBe(readme);
  });

  it('has a reference (docs/configuration.md) naming every variable the schema accepts, and no other', () => {
    const reference = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    const documented = [...reference.matchAll(/^### ([A-Z0-9_]+)$/gm)].map((match) => match[1]);
    const accepted = Object.keys(ConfigSchema.properties);
    expect([...documented].sort()).toEqual([...accepted].sort());
    // Each with its default and, for secrets, the warning; a variable the schema reads is set by its documented name.
    for (const name of accepted) {
      const section = reference.slice(reference.indexOf(`### ${name}\n`)).split(/\n### /)[0]!;
      const fallback = (ConfigSchema.properties as Record<string, { default?: string | number | boolean }>)[name]!.default;
      expect(section).toContain(`- Default: ${fallback === undefined ? '(unset)' : fallback === '' ? '(empty)' : `\`${String(fallback)}\``}`);
      expect(section.includes('- Secret: yes')).toBe(secretSettings.has(name));
    }
    expect(loadConfig({ EVENT_LOG_RETENTION_DAYS: '7' }).EVENT_LOG_RETENTION_DAYS).toBe(7);
  });

  it('keeps docs/configuration.md exactly as the schema writes it (npm run docs:config)', () => {
    const reference = readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
    expect(reference).toBe(configurationReference());
  });
});
