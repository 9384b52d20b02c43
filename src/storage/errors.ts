/** Tells a database that cannot be reached apart from a query that is wrong. */
const unavailableCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '57014', // query_canceled (statement_timeout)
]);

export function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error; current instanceof Error; current = current.cause) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (unavailableCodes.has(code) || code.startsWith('08'))) return true;
    // pg and pg-pool say so in words: a lost connection, or no pooled connection free in time
    // (the pool exhausted under load: try again shortly, as for an outage).
    if (/Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(current.message)) return true;
  }
  return false;
}

/** PostgreSQL's unique_violation, with the constraint it hit. */
export function uniqueViolation(error: unknown): string | undefined {
  const candidate = error as { code?: unknown; constraint?: unknown };
  if (candidate?.code !== '23505') return undefined;
  return typeof candidate.constraint === 'string' ? candidate.constraint : 'unique';
}

/**
 * A transaction the database rolled back to break a deadlock (40P01) or a serialization conflict
 * (40001): nothing of it was kept, and the same request tried again succeeds.
 */
export function isTransientConflict(error: unknown): boolean {
  for (let current = error; current instanceof Error; current = current.cause) {
    const code = (current as { code?: unknown }).code;
    if (code === '40P01' || code === '40001') return true;
  }
  return false;
}
