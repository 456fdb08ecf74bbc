/**
 * Firecracker as the driver's VMM, through its HTTP API on a unix socket (PUT /boot-source,
 * /drives/{id}, /machine-config, /actions; PATCH /vm; PUT /snapshot/create and /snapshot/load).
 * For KVM hosts: Firecracker needs /dev/kvm and is not packaged in Debian bookworm, so on these
 * build machines `unavailable()` says so and its tests skip.
 *
 * Firecracker has no virtio-serial: the agent's port is a vsock, whose host side Firecracker
 * exposes as a unix socket (`uds_path`) where the host connects and writes `CONNECT <port>\n`.
 * `agentSocket` is that socket; the guest agent listens on vsock port AGENT_VSOCK_PORT.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { open } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { PolydevError } from "@polydev/core";
import type { RunningVm, VmConfig, Vmm } from "./vmm.js";

export const AGENT_VSOCK_PORT = 1024;

export interface FirecrackerVmmOptions {
  /** Default /usr/local/bin/firecracker (from Firecracker's GitHub releases). */
  firecrackerPath?: string;
}

function api(socketPath: string, method: string, path: string, body?: unknown): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        headers:
          payload === undefined
            ? {}
            : { "content-type": "application/json", "content-length": Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8").slice(0, 4096);
          if ((res.statusCode ?? 500) >= 300)
            reject(new PolydevError("sandbox_failed", `Firecracker ${method} ${path}: ${text}`));
          else resolve(text.length > 0 ? JSON.parse(text) : undefined);
        });
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

export class FirecrackerVmm implements Vmm {
  readonly name = "firecracker";
  readonly networks = false;
  private readonly path: string;

  constructor(options: FirecrackerVmmOptions = {}) {
    this.path = options.firecrackerPath ?? "/usr/local/bin/firecracker";
  }

  async unavailable(): Promise<string | undefined> {
    if (!existsSync(this.path)) {
      return `Firecracker (no binary at ${this.path}; it is not packaged in Debian bookworm: install a release from github.com/firecracker-microvm/firecracker)`;
    }
    if (!existsSync("/dev/kvm")) return "/dev/kvm (Firecracker runs on KVM only)";
    return undefined;
  }

  async start(config: VmConfig): Promise<RunningVm> {
    const apiSocket = join(config.runDir, "firecracker.sock");
    const stderr = await open(config.stderrLog, "a", 0o600);
    const child = spawn(this.path, ["--api-sock", apiSocket], {
      env: {},
      cwd: config.runDir,
      stdio: ["ignore", "ignore", stderr.fd],
      uid: config.uid,
      gid: config.gid,
      detached: true,
    });
    await stderr.close();
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.unref();
    const pid = child.pid ?? 0;
    // Firecracker listens once its API socket exists; configured in full before it starts.
    await waitForFile(apiSocket, exited);
    if (!config.incoming) {
      await api(apiSocket, "PUT", "/boot-source", {
        kernel_image_path: config.kernel,
        initrd_path: config.initrd,
        boot_args: config.cmdline,
      });
      await api(apiSocket, "PUT", "/machine-config", {
        vcpu_count: config.vcpus,
        mem_size_mib: config.memoryMb,
      });
      for (const disk of config.disks) {
        await api(apiSocket, "PUT", `/drives/${disk.serial}`, {
          drive_id: disk.serial,
          path_on_host: disk.path,
          is_root_device: false,
          is_read_only: disk.readOnly,
        });
      }
      await api(apiSocket, "PUT", "/vsock", { guest_cid: 3, uds_path: config.agentSocket });
      await api(apiSocket, "PUT", "/actions", { action_type: "InstanceStart" });
    }
    return new FirecrackerVm(pid, exited, apiSocket, child);
  }

  async attach(config: VmConfig, pid: number): Promise<RunningVm> {
    return new FirecrackerVm(pid, new Promise(() => undefined), join(config.runDir, "firecracker.sock"));
  }
}

async function waitForFile(path: string, exited: Promise<void>): Promise<void> {
  const { watch } = await import("node:fs");
  const { dirname } = await import("node:path");
  await new Promise<void>((resolve, reject) => {
    const watcher = watch(dirname(path));
    const done = (error?: Error): void => {
      watcher.close();
      if (error) reject(error);
      else resolve();
    };
    watcher.on("change", () => existsSync(path) && done());
    exited.then(() => done(new PolydevError("sandbox_failed", "Firecracker exited at start")));
    if (existsSync(path)) done();
  });
}

class FirecrackerVm implements RunningVm {
  constructor(
    readonly pid: number,
    readonly exited: Promise<void>,
    private readonly apiSocket: string,
    private readonly child?: ReturnType<typeof spawn>,
  ) {}

  async restore(stateFile: string): Promise<void> {
    // Firecracker snapshots are a state file plus a memory file beside it (see save).
    await api(this.apiSocket, "PUT", "/snapshot/load", {
      snapshot_path: stateFile,
      mem_backend: { backend_type: "File", backend_path: `${stateFile}.mem` },
      resume_vm: true,
    });
  }

  async pause(): Promise<void> {
    await api(this.apiSocket, "PATCH", "/vm", { state: "Paused" });
  }

  async save(stateFile: string): Promise<void> {
    await api(this.apiSocket, "PUT", "/snapshot/create", {
      snapshot_type: "Full",
      snapshot_path: stateFile,
      mem_file_path: `${stateFile}.mem`,
    });
  }

  async kill(): Promise<void> {
    this.child?.ref();
    try {
      process.kill(this.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    if (this.child) await this.exited;
  }

  detach(): void {
    // Nothing held open between API calls.
  }
}
