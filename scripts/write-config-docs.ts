/** Rewrites the configuration table in README.md from the config schema (`npm run docs:config`). */
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigurationTable } from '../src/config/config-docs.js';

const file = new URL('../README.md', import.meta.url);
writeFileSync(file, withConfigurationTable(readFileSync(file, 'utf8')));
