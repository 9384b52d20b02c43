/**
 * Entry point of the `iot-gateway` command (bin/iot-gateway.js, `npm run cli --`, `npm start`).
 * The commands live in src/cli/; `iot-gateway --help` lists them, with the exit codes.
 */
import { main } from './cli/main.js';

const code = await main(process.argv.slice(2));
// `serve` returns once listening; the process then lives until it is stopped.
if (code !== 0) process.exitCode = code;
