/** Route schemas: the single source for validation, the OpenAPI document and the SDK types. */
import { NETWORK_MODES, SANDBOX_STATES } from "@polydev/core";
import { z } from "zod";

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .meta({ id: "Error" });

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "environment names are letters, digits and _");
export const envSchema = z
  .record(envName, z.string().max(32 * 1024))
  .refine((env) => Object.keys(env).length <= 256, "at most 256 environment variables");

/**
 * Every id the server hands out is a kind prefix, `_` and base64url (`sbx_…`, `run_…`): anything
 * else is refused here, so odd bytes (`%00`, `../`, megabytes) never reach the store or a driver.
 */
export const resourceId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, "ids are 1–64 letters, digits, '_' or '-' (as the API returned them)");
export const idParams = z.object({ id: resourceId });
export const sandboxIdParams = idParams;

/** A page's `nextCursor`, handed back unchanged. */
export const cursorSchema = z
  .string()
  .regex(/^\d{1,16}:[A-Za-z0-9_-]{1,64}$/, "cursor must be the nextCursor of a previous page")
  .describe("the nextCursor of the previous page");

export function createSandboxBody(max: {
  cpu: number;
  memoryMb: number;
  diskMb: number;
  pidsMax: number;
  timeoutMs: number;
  idleTimeoutMs: number;
}) {
  return z
    .strictObject({
      cpu: z.number().min(0.05).max(max.cpu).optional().describe(`CPU cores (0.05 … ${max.cpu}); default 1`),
      memoryMb: z
        .number()
        .int()
        .min(32)
        .max(max.memoryMb)
        .optional()
        .describe("memory limit in MiB; default 512"),
      diskMb: z.number().int().min(16).max(max.diskMb).optional().describe("home size in MiB; default 1024"),
      pidsMax: z.number().int().min(8).max(max.pidsMax).optional().describe("process limit; default 256"),
      network: z
        .enum(NETWORK_MODES)
        .optional()
        .describe('"none" (default): loopback only; "egress": outbound internet'),
      timeoutMs: z.number().int().min(1000).max(max.timeoutMs).optional().describe("hard TTL; default 24 h"),
      idleTimeoutMs: z
        .number()
        .int()
        .min(1000)
        .max(max.idleTimeoutMs)
        .optional()
        .describe("no-activity TTL; default 30 min"),
      env: envSchema.optional(),
      metadata: z
        .record(z.string().max(64), z.string().max(1024))
        .refine((m) => Object.keys(m).length <= 64, "at most 64 metadata keys")
        .optional(),
    })
    .meta({ id: "CreateSandbox" });
}

export const sandboxSchema = z
  .object({
    id: z.string(),
    state: z.enum(SANDBOX_STATES),
    failureReason: z.string().nullable(),
    driver: z.string(),
    cpu: z.number(),
    memoryMb: z.number(),
    diskMb: z.number(),
    pidsMax: z.number(),
    network: z.enum(NETWORK_MODES),
    envKeys: z.array(z.string()),
    metadata: z.record(z.string(), z.string()),
    timeoutMs: z.number(),
    idleTimeoutMs: z.number(),
    createdAt: z.string(),
    expiresAt: z.string(),
    lastActivityAt: z.string(),
    stateChangedAt: z.string(),
  })
  .meta({ id: "Sandbox" });

export const sandboxListSchema = z.object({
  items: z.array(sandboxSchema),
  nextCursor: z.string().nullable(),
});

export const listQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  cursor: cursorSchema.optional(),
  state: z.enum(SANDBOX_STATES).optional(),
});

export const commandSchema = z.union([
  z
    .string()
    .min(1, "cmd must not be empty")
    .max(128 * 1024),
  z
    .array(z.string().max(128 * 1024))
    .min(1, "cmd must name a program")
    .max(4096),
]);

export const execBody = z
  .strictObject({
    cmd: commandSchema.describe('a shell line ("ls -la | wc -l") or an argv array (["ls", "-la"])'),
    cwd: z.string().max(4096).optional().describe("relative to the home, or absolute inside the sandbox"),
    env: envSchema.optional(),
    stdin: z.string().optional().describe("text written to the process's stdin, then closed"),
    timeoutMs: z.number().int().min(1).optional().describe("kill the command after this long"),
  })
  .meta({ id: "ExecRequest" });

export const exitSchema = z.object({
  exitCode: z.number().nullable(),
  signal: z.string().nullable(),
  timedOut: z.boolean(),
  durationMs: z.number(),
});

export const execResultSchema = exitSchema
  .extend({ stdout: z.string(), stderr: z.string(), truncated: z.boolean() })
  .meta({ id: "ExecResult" });

export const processSchema = z
  .object({
    id: z.string(),
    argv: z.array(z.string()),
    startedAt: z.string(),
    state: z.enum(["running", "exited"]),
    exitCode: z.number().nullable(),
    signal: z.string().nullable(),
    outputBytes: z.number(),
  })
  .meta({ id: "BackgroundProcess" });

export const startProcessBody = z.strictObject({
  cmd: commandSchema,
  cwd: z.string().max(4096).optional(),
  env: envSchema.optional(),
});

export const SIGNALS = [
  "SIGTERM",
  "SIGKILL",
  "SIGINT",
  "SIGHUP",
  "SIGQUIT",
  "SIGUSR1",
  "SIGUSR2",
  "SIGSTOP",
  "SIGCONT",
] as const;
export const signalBody = z.strictObject({ signal: z.enum(SIGNALS).default("SIGTERM") });

export const pathQuery = z.strictObject({
  path: z.string().max(4096).default(".").describe("relative to the home (/home/user)"),
});

export const fileEntrySchema = z
  .object({
    name: z.string(),
    path: z.string(),
    type: z.enum(["file", "directory", "symlink", "other"]),
    sizeBytes: z.number(),
    modifiedAt: z.string(),
    mode: z.number(),
  })
  .meta({ id: "FileEntry" });

export const logEntrySchema = z.object({
  id: z.number(),
  at: z.string(),
  level: z.string(),
  source: z.string(),
  message: z.string(),
});

export const okSchema = z.object({ ok: z.literal(true) });
