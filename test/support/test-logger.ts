import { Writable } from 'node:stream';
import pino from 'pino';

/** A logger that keeps what it is told, for tests that check what a component logs. */
export interface LogLine {
  level: string;
  obj: object;
  msg: string | undefined;
}

export function testLogger() {
  const lines: LogLine[] = [];
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, obj, msg });
  };
  return { lines, logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } };
}

/**
 * A real pino logger writing JSON lines into memory, as the gateway writes them to stdout: for
 * tests that read the process log as an operator would (one `grep` on an id).
 */
export function jsonLogger(level: pino.Level = 'info') {
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(...chunk.toString('utf8').split('\n').filter((line) => line.length > 0));
      done();
    },
  });
  const logger = pino({ level }, stream);
  return {
    logger,
    /** Every line written so far, as text. */
    raw,
    /** The lines that mention `text` anywhere (what `grep text` would print), parsed. */
    grep(text: string): Record<string, unknown>[] {
      return raw.filter((line) => line.includes(text)).map((line) => JSON.parse(line) as Record<string, unknown>);
    },
  };
}
