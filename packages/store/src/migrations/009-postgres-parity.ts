import { type Kysely, sql } from "kysely";
import type { SqlFamily } from "./sql-family.js";

/** 32-bit on Postgres until here, 64-bit on SQLite: a long run's token counts can pass 2^31. */
const TOKEN_COLUMNS = [
  ["runs", "input_tokens"],
  ["runs", "output_tokens"],
  ["usage", "input_tokens"],
  ["usage", "output_tokens"],
] as const;

/**
 * Postgres made to compare like SQLite. Text columns take the database's collation by default
 * (often a locale: "a" before "B", punctuation weighed differently), while ids are base64url and
 * pages are cut at "(created_at, id) <" a cursor, so every text column gets the "C" (byte-order)
 * collation SQLite uses; indexes on them are rebuilt with it. Tables made after this migration
 * declare their text columns with `textColumn(family)`. SQLite has nothing to change.
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  if (family !== "postgres") return;
  const { rows } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = current_schema() and data_type = 'text' and table_name not like 'kysely\\_%'
    order by table_name, ordinal_position`.execute(db);
  for (const { table_name, column_name } of rows) {
    await sql`alter table ${sql.table(table_name)} alter column ${sql.ref(column_name)} type text collate "C"`.execute(
      db,
    );
  }
  for (const [table, column] of TOKEN_COLUMNS) {
    await sql`alter table ${sql.table(table)} alter column ${sql.ref(column)} type bigint`.execute(db);
  }
}

/** Widening and byte order are what every later query relies on; there is no going back. */
export async function down(): Promise<void> {}
