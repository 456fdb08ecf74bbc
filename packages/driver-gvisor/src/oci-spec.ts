/**
 * The OCI runtime spec (config.json) of one sandbox. Only the fields runsc reads are written.
 */
import type { SandboxLimits } from "@polydev/core";
import { AGENT_SOCKET_DIR, AGENT_SOCKET_NAME, GUEST_AGENT } from "./guest-layer.js";
import type { ImageUser } from "./image-user.js";

export const TOOLBOX_MOUNT = "/opt/polydev";

/**
 * Docker's default capabilities: root inside can chown, setuid and the like within the
 * sandbox's own kernel (the Sentry), never the host's.
 */
const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_AUDIT_WRITE",
  "CAP_SETFCAP",
];

/**
 * The Sentry's own threads and the ptrace platform's stub processes live in the host pids
 * cgroup too (about 70 for an idle sandbox), and the Sentry dies when it cannot make one; the
 * host limit is a backstop above the sandbox's own pidsMax.
 */
export const HOST_PIDS_OVERHEAD = 256;

export interface OciSpecInput {
  cgroupsPath: string;
  limits: SandboxLimits;
  /** The process environment: the image's, then the sandbox's, then HOME and PATH defaults. */
  env: Record<string, string>;
  user: ImageUser;
  hostname: string;
  toolboxDir: string;
  socketDir: string;
}

export function ociSpec(input: OciSpecInput): Record<string, unknown> {
  const { limits, user } = input;
  const caps = user.uid === 0 ? CAPABILITIES : [];
  const periodUs = 100_000;
  return {
    ociVersion: "1.0.2",
    process: {
      user: { uid: user.uid, gid: user.gid },
      args: [`${TOOLBOX_MOUNT}/bin/node`, GUEST_AGENT, `${AGENT_SOCKET_DIR}/${AGENT_SOCKET_NAME}`, user.home],
      env: Object.entries(input.env).map(([key, value]) => `${key}=${value}`),
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      // The guest's process limit: the Sentry counts its tasks against RLIMIT_NPROC per user.
      rlimits: [
        { type: "RLIMIT_NPROC", hard: limits.pidsMax, soft: limits.pidsMax },
        { type: "RLIMIT_NOFILE", hard: 4096, soft: 4096 },
      ],
      noNewPrivileges: false,
    },
    root: { path: "rootfs", readonly: false },
    hostname: input.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts" },
      { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "nodev", "mode=1777"] },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: TOOLBOX_MOUNT, type: "bind", source: input.toolboxDir, options: ["rbind", "ro"] },
      { destination: AGENT_SOCKET_DIR, type: "bind", source: input.socketDir, options: ["rbind"] },
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      cgroupsPath: input.cgroupsPath,
      resources: {
        memory: { limit: limits.memoryMb * 1024 * 1024 },
        cpu: { quota: Math.max(1000, Math.round(limits.cpu * periodUs)), period: periodUs },
        pids: { limit: limits.pidsMax + HOST_PIDS_OVERHEAD },
      },
    },
  };
}
