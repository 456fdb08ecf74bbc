/**
 * What every escape probe gets: the driver, sandboxes shared between probes that do not disturb
 * each other (created on first use, destroyed at the end), throw-away sandboxes for the ones that
 * do, canaries planted in the host's secret places, and helpers that run the probe programs
 * inside through exec, a terminal or a background process.
 */
import { randomBytes } from "node:crypto";
import { lstat, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { AgentConnection } from "../agent.js";
import type { SandboxDriver } from "../driver.js";
import type { SandboxHandle, SandboxImage, SandboxLimits, SandboxSpec } from "../sandbox.js";
import type { EscapePayloads } from "./escape-payloads.js";
import { preparePayloads } from "./escape-payloads.js";
import type { EscapeProbeId } from "./escape-probe-ids.js";
import { JSON_BEGIN, JSON_END } from "./escape-probe-scripts.js";
import type { CommandResult } from "./run-command.js";
import { runCommand, runInBackground, runInPty } from "./run-command.js";

export interface EscapeProbeSetup {
  driver: SandboxDriver;
  cleanup(): Promise<void>;
  /**
   * Host paths no sandbox may see besides `/root` and `/etc/shadow`: the driver's root
   * directory, the server's data directory. Directories get a canary file planted.
   */
  hostSecretPaths?: string[];
  /**
   * Host directories where the driver keeps per-sandbox state: however much a sandbox writes,
   * their total size may grow only by a small bound.
   */
  hostStateDirs?: string[];
}

export interface EscapeProbeOptions {
  /** Probes this driver cannot run, each with the reason printed in the test name. */
  skip?: Partial<Record<EscapeProbeId, string>>;
  /** Limits of the shared sandboxes (default 1 cpu, 256 MiB, 64 MiB disk, 128 pids). */
  limits?: Partial<SandboxLimits>;
  /** Per-probe timeout (default 60 s; the limit probes get twice that). */
  timeoutMs?: number;
  /** Every sandbox starts from this image (root inside) instead of the driver's host view. */
  image?: SandboxImage;
}

export interface LiveSandbox {
  handle: SandboxHandle;
  connection: AgentConnection;
}

/** The shared sandboxes: two with network none, two with egress. */
export type SharedSandboxName = "a" | "b" | "egress" | "egress2";

export interface EscapeProbe {
  id: EscapeProbeId;
  title: string;
  /** Fork bombs, memory hogs and floods take longer than a look around. */
  slow?: boolean;
  /** `skip` ends the probe as skipped, with a reason, when the host cannot stage it. */
  run(context: EscapeProbeContext, skip: (reason: string) => void): Promise<void>;
}

const DEFAULT_LIMITS: SandboxLimits = { cpu: 1, memoryMb: 256, diskMb: 64, pidsMax: 128 };
/** A host variable every process started after the suite began would inherit if env leaked. */
export const HOST_SECRET_VARIABLE = "POLYDEV_ESCAPE_PROBE_SECRET";

const probeUid = (label: string): string => `esc-${label}-${randomBytes(4).toString("hex")}`;

/** Finds the probe program's JSON between its markers (a terminal adds CR/LF and echo). */
export function parseProbeOutput<T>(text: string, what: string): T {
  const start = text.lastIndexOf(JSON_BEGIN);
  const end = text.lastIndexOf(JSON_END);
  if (start < 0 || end < start) {
    throw new Error(`${what} printed no result; its output was: ${text.slice(-2000)}`);
  }
  const parsed: T & { unsupportedArch?: string } = JSON.parse(text.slice(start + JSON_BEGIN.length, end));
  if (parsed.unsupportedArch !== undefined) {
    throw new Error(
      `${what}: the probe programs use x86_64 system call numbers; this is ${parsed.unsupportedArch}`,
    );
  }
  return parsed;
}

export class EscapeProbeContext {
  readonly limits: SandboxLimits;
  /** A file name planted in every secret host directory, and its content. */
  readonly canaryName = `.polydev-escape-canary-${randomBytes(6).toString("hex")}`;
  readonly canaryText = `canary-${randomBytes(12).toString("hex")}`;
  readonly hostSecretValue = `host-secret-${randomBytes(12).toString("hex")}`;
  private setupValue: EscapeProbeSetup | undefined;
  private readonly planted: string[] = [];
  /** Lines of host secret files (/etc/shadow…) that must never show up inside. */
  private readonly secretLines: string[] = [];
  private readonly shared = new Map<SharedSandboxName, Promise<LiveSandbox>>();
  private payloadsValue: Promise<EscapePayloads> | undefined;

  constructor(
    limits: Partial<SandboxLimits> = {},
    private readonly image?: SandboxImage,
  ) {
    this.limits = { ...DEFAULT_LIMITS, ...limits };
  }

  async start(setup: EscapeProbeSetup): Promise<void> {
    this.setupValue = setup;
    process.env[HOST_SECRET_VARIABLE] = this.hostSecretValue;
    for (const path of this.secretPaths()) {
      const info = await stat(path).catch(() => undefined);
      if (info?.isDirectory()) {
        const canary = join(path, this.canaryName);
        await writeFile(canary, this.canaryText, { mode: 0o600 });
        this.planted.push(canary);
      } else if (info?.isFile()) {
        const text = await readFile(path, "utf8").catch(() => "");
        for (const line of text.split("\n")) if (line.trim().length >= 10) this.secretLines.push(line.trim());
      }
    }
  }

  async stop(): Promise<void> {
    delete process.env[HOST_SECRET_VARIABLE];
    const shared = [...this.shared.values()];
    this.shared.clear();
    for (const pending of shared) {
      const sandbox = await pending.catch(() => undefined);
      if (sandbox === undefined) continue;
      await sandbox.connection.close().catch(() => undefined);
      await this.driver()
        .destroy(sandbox.handle)
        .catch(() => undefined);
    }
    const payloads = await this.payloadsValue?.catch(() => undefined);
    await payloads?.cleanup();
    for (const canary of this.planted) await rm(canary, { force: true });
    await this.setupValue?.cleanup();
  }

  driver(): SandboxDriver {
    if (!this.setupValue) throw new Error("the escape probes' setup did not run");
    return this.setupValue.driver;
  }

  /** /root, /etc/shadow and the setup's secret paths. */
  secretPaths(): string[] {
    return ["/root", "/etc/shadow", "/etc/gshadow", ...(this.setupValue?.hostSecretPaths ?? [])];
  }

  /** The secret directories (where canaries were planted). */
  secretDirs(): string[] {
    return this.planted.map((canary) => join(canary, ".."));
  }

  /**
   * The most privileged user a probe can run as: "root" in image sandboxes (root inside its own
   * user namespace), otherwise the sandbox's only user (undefined).
   */
  get strongestUser(): string | undefined {
    return this.image === undefined ? undefined : "root";
  }

  spec(label: string, extra: Partial<SandboxSpec> = {}): SandboxSpec {
    const image = this.image === undefined ? {} : { image: this.image };
    return { id: probeUid(label), limits: this.limits, network: "none", env: {}, ...image, ...extra };
  }

  /** A sandbox of the probe's own, always destroyed afterwards. */
  async withSandbox<T>(
    label: string,
    extra: Partial<SandboxSpec>,
    use: (sandbox: LiveSandbox) => Promise<T>,
  ): Promise<T> {
    const handle = await this.driver().create(this.spec(label, extra));
    try {
      const connection = await this.driver().connect(handle);
      try {
        return await use({ handle, connection });
      } finally {
        await connection.close().catch(() => undefined);
      }
    } finally {
      await this.driver().destroy(handle);
    }
  }

  /**
   * One of the long-lived sandboxes, created on first use. A probe that broke it (its
   * connection or the sandbox itself) has failed on its own; the next probe gets a working one
   * instead of failing for the same reason.
   */
  async sandbox(name: SharedSandboxName): Promise<LiveSandbox> {
    const network = name.startsWith("egress") ? "egress" : "none";
    const create = async (): Promise<LiveSandbox> => {
      const handle = await this.driver().create(this.spec(`shared-${name}`, { network }));
      return { handle, connection: await this.driver().connect(handle) };
    };
    let pending = this.shared.get(name);
    if (pending === undefined) {
      pending = create();
      this.shared.set(name, pending);
      return pending;
    }
    const current = await pending;
    const healthy = await current.connection.ping(AbortSignal.timeout(10_000)).then(
      () => true,
      () => false,
    );
    if (healthy) return current;
    await current.connection.close().catch(() => undefined);
    pending = (async () => {
      if (await this.driver().isAlive(current.handle)) {
        return { handle: current.handle, connection: await this.driver().connect(current.handle) };
      }
      await this.driver()
        .destroy(current.handle)
        .catch(() => undefined);
      return create();
    })();
    this.shared.set(name, pending);
    return pending;
  }

  /** The payload files, built once and installed on the host. */
  payloads(): Promise<EscapePayloads> {
    this.payloadsValue ??= this.sandbox("a").then(({ connection }) => preparePayloads(connection));
    return this.payloadsValue;
  }

  sh(connection: AgentConnection, line: string): Promise<CommandResult> {
    return runCommand(connection, line);
  }

  /** Runs a probe program (escape-probe-scripts.ts) through exec and returns its JSON. */
  async python<T>(connection: AgentConnection, script: string, arg: unknown = {}): Promise<T> {
    const result = await runCommand(connection, ["python3", "-c", script, JSON.stringify(arg)]);
    return parseProbeOutput<T>(`${result.stdout}\n${result.stderr}`, "the probe program (exec)");
  }

  /** The same on a terminal. */
  async pythonInPty<T>(connection: AgentConnection, script: string, arg: unknown = {}): Promise<T> {
    const run = await runInPty(connection, ["python3", "-c", script, JSON.stringify(arg)]);
    return parseProbeOutput<T>(run.output, "the probe program (terminal)");
  }

  /** The same as a background process. */
  async pythonInBackground<T>(connection: AgentConnection, script: string, arg: unknown = {}): Promise<T> {
    const run = await runInBackground(connection, ["python3", "-c", script, JSON.stringify(arg)]);
    return parseProbeOutput<T>(run.output, "the probe program (background)");
  }

  /** Text that must never appear inside: canaries, secret file lines, the host-only variable. */
  leakedSecrets(text: string): string[] {
    const found: string[] = [];
    if (text.includes(this.canaryText)) found.push(`canary content ${this.canaryText}`);
    if (text.includes(this.canaryName)) found.push(`canary name ${this.canaryName}`);
    if (text.includes(this.hostSecretValue)) found.push(`the host-only variable ${HOST_SECRET_VARIABLE}`);
    for (const line of this.secretLines) if (text.includes(line)) found.push(`host secret line "${line}"`);
    return found;
  }

  /** Total bytes of files under the setup's host state directories. */
  async hostStateBytes(): Promise<number> {
    let total = 0;
    const walk = async (dir: string): Promise<void> => {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const path = join(dir, name);
        const info = await lstat(path).catch(() => undefined);
        if (info?.isDirectory()) await walk(path);
        else if (info) total += info.size;
      }
    };
    for (const dir of this.setupValue?.hostStateDirs ?? []) await walk(dir);
    return total;
  }

  hasHostStateDirs(): boolean {
    return (this.setupValue?.hostStateDirs ?? []).length > 0;
  }
}
