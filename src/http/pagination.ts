/**
 * Keyset pagination shared by every list route: `limit` and an opaque `cursor` in,
 * `{items, next_cursor}` out. The cursor is the sort key of the last item returned, so pages stay
 * stable while rows are added.
 */
import { Type, type TSchema } from 'typebox';
import { ApiProblem } from './problems.js';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export const PageQuery = {
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, default: DEFAULT_PAGE_SIZE, description: 'Items per page.' })),
  cursor: Type.Optional(Type.String({ maxLength: 200, description: 'The `next_cursor` of the previous page.' })),
};

export function Page<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page.' }),
  });
}

export function encodeCursor(key: number): string {
  return Buffer.from(`v1:${key}`).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const match = /^v1:(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw invalidCursor('cursor must be a next_cursor value returned by this list.');
  return Number(match[1]);
}

/** A cursor for lists sorted by time, then id: the microseconds since the epoch and the id. */
export function encodeTimeCursor(key: { atMicros: string; id: number }): string {
  return Buffer.from(`v2:${key.atMicros}:${key.id}`).toString('base64url');
}

export function decodeTimeCursor(cursor: string | undefined): { atMicros: string; id: number } | undefined {
  if (cursor === undefined) return undefined;
  const match = /^v2:(-?\d{1,18}):(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!match) throw invalidCursor('cursor must be a next_cursor value returned by this list, with the same since/until.');
  return { atMicros: match[1]!, id: Number(match[2]) };
}

function invalidCursor(detail: string): ApiProblem {
  return new ApiProblem('invalid_cursor', detail, [{ field: 'querystring.cursor', message: 'is not a cursor this list returned' }]);
}

/** Given up to limit+1 rows fetched, the page and the cursor of the next one (the last row's sort key). */
export function toPage<Row, Item>(
  rows: Row[],
  limit: number,
  present: (row: Row) => Item,
  keyOf: (row: Row) => number = (row) => (row as { id: number }).id,
  cursorOf: (row: Row) => string = (row) => encodeCursor(keyOf(row)),
) {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(present),
    next_cursor: rows.length > limit && last !== undefined ? cursorOf(last) : null,
  };
}
