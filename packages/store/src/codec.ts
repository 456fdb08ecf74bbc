/**
 * The one place database values become domain values (and back), so every dialect's quirks are
 * absorbed here and nowhere else.
 */

/**
 * Epoch-millisecond and other int8 columns: Postgres returns int8 as a string (it may exceed
 * 2^53), SQLite as a number. Our values stay far below 2^53, so both become numbers here.
 */
export function int8(value: number | string | bigint): number {
  return typeof value === "number" ? value : Number(value);
}

export const ms = int8;

export function msOrNull(value: number | string | bigint | null): number | null {
  return value === null ? null : ms(value);
}

/** JSON lives in text columns: portable, and the store never queries inside it. */
export function toJson(value: unknown): string {
  return JSON.stringify(value);
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}
