import { type ColumnDefinitionBuilder, sql } from "kysely";

/** The dialects the migrations are written for; the few DDL differences branch on this. */
export type SqlFamily = "sqlite" | "postgres";

/**
 * An auto-numbered primary key: SQLite's AUTOINCREMENT never reuses a deleted row's id, and
 * Postgres spells it as an identity column (its int8 arrives as a string; the codec converts it).
 */
export function autoIncrementId(family: SqlFamily): {
  type: "integer" | "bigint";
  build: (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder;
} {
  return family === "postgres"
    ? { type: "bigint", build: (c) => c.primaryKey().generatedByDefaultAsIdentity() }
    : { type: "integer", build: (c) => c.primaryKey().autoIncrement() };
}

/**
 * A text column for a table added after migration 009: on Postgres with SQLite's byte-order
 * collation, so ordering and cursor comparisons agree across dialects (see 009-postgres-parity).
 */
export function textColumn(family: SqlFamily): (column: ColumnDefinitionBuilder) => ColumnDefinitionBuilder {
  return family === "postgres" ? (c) => c.modifyFront(sql`collate "C"`) : (c) => c;
}
