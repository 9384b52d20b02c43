/**
 * Writes the configuration reference (docs/configuration.md) and the README's configuration table
 * from the config schema (`npm run docs:config`).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configurationReference, withConfigurationTable } from '../src/config/config-docs.js';

const readme = new URL('../README.md', import.meta.url);
writeFileSync(readme, withConfigurationTable(readFileSync(readme, 'utf8')));
writeFileSync(new URL('../docs/configuration.md', import.meta.url), configurationReference());
