/**
 * Writes docs/benchmarks.md and docs/benchmarks.json again from the last run's JSON
 * (bench/results/<full|quick>-latest.json), after bench/notes.md was edited.
 *
 * Usage: tsx bench/render-docs.ts [full|quick]   (default: full)
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './support/child.js';
import { writeReport, type BenchResults } from './support/report.js';

const mode = process.argv[2] === 'quick' ? 'quick' : 'full';
const resultsDir = path.join(repoRoot, 'bench', 'results');
const results = JSON.parse(readFileSync(path.join(resultsDir, `${mode}-latest.json`), 'utf8')) as BenchResults;
const { table } = writeReport(results, { resultsDir, docs: true });
console.log(table);
