import type { Kysely } from "kysely";
import { autoIncrementId, type SqlFamily } from "./sql-family.js";

const BUILT_IN_PRESETS = [
  {
    name: "package-registries",
    description: "npm, PyPI, Debian, crates.io, the Go module proxy and Maven Central",
    allow: [
      "registry.npmjs.org",
      "pypi.org",
      "files.pythonhosted.org",
      "deb.debian.org",
      "security.debian.org",
      "crates.io",
      "static.crates.io",
      "index.crates.io",
      "proxy.golang.org",
      "sum.golang.org",
      "repo.maven.apache.org",
      "repo1.maven.org",
    ],
  },
  {
    name: "github",
    description: "GitHub: the site, its API, git over HTTPS and SSH, and its content hosts",
    allow: ["github.com", "*.github.com", "*.githubusercontent.com", "ghcr.io", "*.ghcr.io"],
  },
];

/**
 * Allow-list networks: a sandbox's rules (JSON, null unless its mode is "allowlist"), a user's
 * default network (JSON), the admin's named presets, and the audit log of each sandbox's egress
 * decisions (bounded per sandbox by the server; its rows go with the sandbox).
 */
export async function up(db: Kysely<unknown>, family: SqlFamily): Promise<void> {
  await db.schema.alterTable("sandboxes").addColumn("egress_policy", "text").execute();
  await db.schema.alterTable("users").addColumn("network_default", "text").execute();
  await db.schema
    .createTable("egress_presets")
    .addColumn("name", "text", (c) => c.primaryKey())
    .addColumn("description", "text", (c) => c.notNull())
    .addColumn("allow", "text", (c) => c.notNull())
    .addColumn("deny", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  // Built-in presets, seeded once here (not at each start) so an admin's edits and deletions stay.
  const now = Date.now();
  await db
    .insertInto("egress_presets" as never)
    .values(
      BUILT_IN_PRESETS.map((p) => ({
        name: p.name,
        description: p.description,
        allow: JSON.stringify(p.allow),
        deny: "[]",
        created_at: now,
        updated_at: now,
      })) as never,
    )
    .execute();
  const id = autoIncrementId(family);
  await db.schema
    .createTable("egress_audit")
    .addColumn("id", id.type, id.build)
    .addColumn("sandbox_id", "text", (c) => c.notNull().references("sandboxes.id").onDelete("cascade"))
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("host", "text")
    .addColumn("address", "text", (c) => c.notNull())
    .addColumn("port", "integer", (c) => c.notNull())
    .addColumn("decision", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("bytes_out", "bigint", (c) => c.notNull())
    .addColumn("bytes_in", "bigint", (c) => c.notNull())
    .addColumn("duration_ms", "bigint", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("egress_audit_sandbox")
    .on("egress_audit")
    .columns(["sandbox_id", "id"])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("egress_audit").ifExists().execute();
  await db.schema.dropTable("egress_presets").ifExists().execute();
  await db.schema.alterTable("users").dropColumn("network_default").execute();
  await db.schema.alterTable("sandboxes").dropColumn("egress_policy").execute();
}
