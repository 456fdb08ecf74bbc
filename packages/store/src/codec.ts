/** The one place database values become domain values (and back). */
import { PolydevError } from "@polydev/core";

/** Postgres returns int8 as a string; SQLite as a number. Both become numbers here. */
export function ms(value: number | string): number {
  return typeof value === "number" ? value : Number(value);
}

export function msOrNull(value: number | string | null): number | null {
  return value === null ? null : ms(value);
}

export function toJson(value: unknown): string {
  return JSON.stringify(value);
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

/** Unique-constraint violations become a 409 that names the field, for both dialects. */
export function mapWriteError(error: unknown, what: string): never {
  const message = error instanceof Error ? error.message : String(error);
  const code = typeof error === "object" && error !== null && "code" in error ? String(error.code) : "";
  if (code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY" || code === "23505") {
    throw new PolydevError("conflict", `${what} already exists`, { cause: error });
  }
  throw error instanceof Error ? error : new Error(message);
}
