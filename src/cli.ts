/**
 * Entry point of the `iot-gateway` command (bin/iot-gateway.js, `npm run cli --`, `npm start`).
 * The commands live in src/cli/; `iot-gateway --help` lists them, with the exit codes.
 */
import { main } from './cli/main.js';

const code = await main(process.argv.slice(2));
// `serve` returns 0 once listening, and the process lives until it is stopped; other commands end
// when their work does. A failure exits at once, whatever handle is still open.
if (code !== 0) process.exit(code);
