/** Newest-first paging shared by every list: the cursor is "<created_at>:<id>" of the last item. */
import type { Page } from "@polydev/core";

export function decodeCursor(cursor: string | undefined): { createdAt: number; id: string } | undefined {
  if (!cursor) return undefined;
  const separator = cursor.indexOf(":");
  const createdAt = Number(cursor.slice(0, separator));
  if (separator <= 0 || !Number.isFinite(createdAt)) return undefined;
  return { createdAt, id: cursor.slice(separator + 1) };
}

/** `rows` were fetched with limit + 1: the extra row only says whether another page exists. */
export function toPage<Row, Item extends { createdAt: number; id: string }>(
  rows: Row[],
  limit: number,
  map: (row: Row) => Item,
): Page<Item> {
  const items = rows.slice(0, limit).map(map);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > limit && last ? `${last.createdAt}:${last.id}` : undefined };
}
