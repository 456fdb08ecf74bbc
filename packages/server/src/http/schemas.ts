/** Route schemas: the single source for validation, the OpenAPI document and the SDK types. */
import { NETWORK_MODES, SANDBOX_STATES } from "@polydev/core";
import { z } from "zod";
import { egressPolicySchema, networkInputSchema } from "./network-schemas.js";

export const errorSchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
    }),
  })
  .meta({ id: "Error" });

/**
 * What the kernel takes at exec: one argument or environment string under 128 KiB (its NUL
 * included), and argv and environment together under ARG_MAX (2 MiB with the default stack
 * limit), which the sandbox's own environment shares. Past these, exec fails with E2BIG; a NUL
 * cannot be passed at all. Both are refused here, with a message, instead of failing deep down.
 */
const MAX_ARG_BYTES = 128 * 1024 - 1;
const MAX_ENV_BYTES = 256 * 1024;
const MAX_ARGV_ENV_BYTES = 1024 * 1024;
const utf8Bytes = (text: string): number => Buffer.byteLength(text, "utf8");

/** Text that becomes an argument, an environment value or a path of a process. */
export function processText(what: string, maxChars: number) {
  return z
    .string()
    .max(maxChars)
    .refine((text) => !text.includes("\0"), `${what} must not contain NUL bytes (\\u0000)`)
    .refine(
      (text) => utf8Bytes(text) <= MAX_ARG_BYTES,
      `${what} is larger than the 128 KiB one argument may take`,
    );
}

function envBytes(env: Record<string, string>): number {
  return Object.entries(env).reduce((sum, [name, value]) => sum + utf8Bytes(name) + utf8Bytes(value) + 2, 0);
}

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "environment names are letters, digits and _");
export const envSchema = z
  .record(envName, processText("an environment value", 32 * 1024))
  .refine((env) => Object.keys(env).length <= 256, "at most 256 environment variables")
  .refine((env) => envBytes(env) <= MAX_ENV_BYTES, "the environment is larger than 256 KiB in all");

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

/**
 * Sandbox names are DNS-label-like, so they read well in URLs, prompts and host names, and never
 * hold the `_` every id has: a path segment is an id or a name, never both.
 */
export const sandboxNameSchema = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    "a sandbox name is 1–63 lowercase letters, digits and '-', starting with a letter or digit",
  )
  .describe("your name for it, unique among your sandboxes that are not destroyed; usable instead of its id");

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
      name: sandboxNameSchema.optional(),
      image: z
        .string()
        .min(1)
        .max(255)
        .optional()
        .describe(
          'the image to start from, e.g. "polydev/base" (the default where the server has images) or one you built, pulled, imported or snapshotted',
        ),
      driver: z
        .string()
        .regex(/^[a-z][a-z0-9-]{0,63}$/, "a driver's name: lowercase letters, digits and '-'")
        .optional()
        .describe(
          'the isolation backend, e.g. "namespace", "gvisor" or "microvm": one of the drivers GET /healthz lists; default the first there',
        ),
      cpu: z.number().min(0.05).max(max.cpu).optional().describe(`CPU cores (0.05 … ${max.cpu}); default 1`),
      memoryMb: z
        .number()
        .int()
        .min(32)
        .max(max.memoryMb)
        .optional()
        .describe("memory limit in MiB; default 512"),
      diskMb: z
        .number()
        .int()
        .min(16)
        .max(max.diskMb)
        .optional()
        .describe(
          "disk size in MiB: the image's files and the sandbox's changes (the home without an image); default 1024",
        ),
      pidsMax: z.number().int().min(8).max(max.pidsMax).optional().describe("process limit; default 256"),
      network: networkInputSchema.optional(),
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
    name: z.string().nullable(),
    image: z.string().nullable().describe("the digest of the image it was made from; null for a host view"),
    state: z.enum(SANDBOX_STATES),
    failureReason: z.string().nullable(),
    driver: z.string(),
    cpu: z.number(),
    memoryMb: z.number(),
    diskMb: z.number(),
    pidsMax: z.number(),
    network: z.enum(NETWORK_MODES),
    egressPolicy: egressPolicySchema.nullable(),
    envKeys: z.array(z.string()),
    metadata: z.record(z.string(), z.string()),
    timeoutMs: z.number(),
    idleTimeoutMs: z.number(),
    createdAt: z.string(),
    expiresAt: z.string(),
    lastActivityAt: z.string(),
    stateChangedAt: z.string(),
    node: z
      .string()
      .nullable()
      .describe("the server (node) that hosts it among replicas; null for sandboxes made before nodes"),
  })
  .meta({ id: "Sandbox" });

export function updateSandboxBody(max: { diskMb: number }) {
  return z
    .strictObject({
      diskMb: z
        .number()
        .int()
        .min(16)
        .max(max.diskMb)
        .describe(`the new disk size in MiB (up to ${max.diskMb}); disks only grow`),
    })
    .meta({ id: "UpdateSandbox" });
}

/** Most sandboxes one fork makes: each is a real sandbox with its own limits. */
const MAX_FORK_COUNT = 16;

export const forkSandboxBody = z
  .strictObject({
    count: z
      .number()
      .int()
      .min(1)
      .max(MAX_FORK_COUNT)
      .default(1)
      .describe(`how many sandboxes to make (1 … ${MAX_FORK_COUNT}); default 1`),
    names: z
      .array(sandboxNameSchema)
      .min(1)
      .max(MAX_FORK_COUNT)
      .optional()
      .describe("one name per new sandbox, in order; default: unnamed"),
  })
  .refine((body) => body.names === undefined || body.names.length === body.count, {
    message: "names must hold exactly one name per new sandbox (as many as count), or be left out",
    path: ["names"],
  })
  .refine((body) => body.names === undefined || new Set(body.names).size === body.names.length, {
    message: "names must be different from each other",
    path: ["names"],
  })
  .meta({ id: "ForkSandbox" });

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
  processText("cmd", MAX_ARG_BYTES).min(1, "cmd must not be empty"),
  z.array(processText("each argument of cmd", MAX_ARG_BYTES)).min(1, "cmd must name a program").max(4096),
]);

const cwdSchema = processText("cwd", 4096);

/** A user of the sandbox's image: a name as useradd allows it, or a uid. */
export const userSchema = z
  .string()
  .regex(
    /^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]{1,9})$/,
    'user must be a user name of the sandbox ("root", "user", ...) or a uid',
  )
  .describe('who runs it: "user" (the default in polydev/base), "root", another user of the image, or a uid');

/** Bytes the kernel counts for a command and its environment (a shell line runs as sh -c). */
function commandBytes(body: { cmd: string | string[]; env?: Record<string, string> | undefined }): number {
  const argv = typeof body.cmd === "string" ? ["/bin/sh", "-c", body.cmd] : body.cmd;
  return argv.reduce((sum, arg) => sum + utf8Bytes(arg) + 1, 0) + envBytes(body.env ?? {});
}
function commandFits(body: { cmd: string | string[]; env?: Record<string, string> | undefined }): boolean {
  return commandBytes(body) <= MAX_ARGV_ENV_BYTES;
}
const commandTooLarge = {
  message: "cmd and env together are larger than the 1 MiB a command may take",
  path: ["cmd"],
};

const DAY_MS = 24 * 60 * 60 * 1000;
export const execBody = z
  .strictObject({
    cmd: commandSchema.describe('a shell line ("ls -la | wc -l") or an argv array (["ls", "-la"])'),
    cwd: cwdSchema.optional().describe("relative to the home, or absolute inside the sandbox"),
    env: envSchema.optional(),
    user: userSchema.optional(),
    stdin: z.string().optional().describe("text written to the process's stdin, then closed"),
    timeoutMs: z.number().int().min(1).max(DAY_MS).optional().describe("kill the command after this long"),
  })
  .refine(commandFits, commandTooLarge)
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

export const startProcessBody = z
  .strictObject({
    cmd: commandSchema,
    cwd: cwdSchema.optional(),
    env: envSchema.optional(),
    user: userSchema.optional(),
  })
  .refine(commandFits, commandTooLarge);

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
  path: processText("path", 4096)
    .default(".")
    .describe("relative to the home of the sandbox's default user (its agent's hello says which)"),
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
