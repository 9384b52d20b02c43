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
