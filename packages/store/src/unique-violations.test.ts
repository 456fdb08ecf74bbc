import { PolydevError } from "@polydev/core";
import { describe, expect, it } from "vitest";
import { toConflictError } from "./unique-violations.js";

/**
 * Both dialects' errors are covered end to end by the contract suite (a real SQLite file, a real
 * Postgres); this pins the parsing of node-postgres' fields on its own.
 */
describe("toConflictError", () => {
  it("names the fields of a Postgres unique violation", () => {
    const pgError = Object.assign(new Error('duplicate key value violates unique constraint "x"'), {
      code: "23505",
      table: "credentials",
      detail: "Key (user_id, provider)=(usr_1, anthropic) already exists.",
    });
    const mapped = toConflictError(pgError);
    expect(mapped).toBeInstanceOf(PolydevError);
    expect(mapped).toMatchObject({
      code: "conflict",
      message: "a credential with this user id and provider already exists",
      details: { fields: ["userId", "provider"] },
      cause: pgError,
    });
  });

  it("leaves every other error as it is", () => {
    const foreignKey = Object.assign(new Error("FOREIGN KEY constraint failed"), {
      code: "SQLITE_CONSTRAINT_FOREIGNKEY",
    });
    expect(toConflictError(foreignKey)).toBe(foreignKey);
    expect(toConflictError("text")).toBe("text");
  });
});
