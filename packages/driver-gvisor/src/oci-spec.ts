/**
 * The OCI runtime spec (config.json) of one sandbox. Only the fields runsc reads are written.
 */
import type { SandboxLimits } from "@polydev/core";
import {
  AGENT_SOCKET_DIR,
  AGENT_SOCKET_NAME,
  GUEST_AGENT,
  GUEST_CGROUP_DIR,
  GUEST_INIT,
} from "./guest-layer.js";
import type { ImageUser } from "./image-user.js";

export const TOOLBOX_MOUNT = "/opt/polydev";
export const SANDBOX_ENV_PREFIX = "POLYDEV_SANDBOX_ENV_";

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
 * The host pids cgroup holds the Sentry's threads and the ptrace platform's stubs (about 70
 * for an idle sandbox; under ptrace a guest process can have a host stub thread per Sentry
 * thread that ran it), and the Sentry dies when it cannot make one. The sandbox's own limit is
 * the guest pids cgroup (guest-init.c); this is the host's backstop, far above it.
 */
export function hostPidsLimit(pidsMax: number): number {
  return Math.max(1024, 16 * pidsMax + 512);
}

export interface OciSpecInput {
  /** The root file system's (absolute) path. */
  rootfs: string;
  cgroupsPath: string;
  limits: SandboxLimits;
  /** The process environment: the image's, then the sandbox's, then HOME and PATH defaults. */
  env: Record<string, string>;
  user: ImageUser;
  hostname: string;
  /** Host memory for the Sentry and the agent on top of memoryMb (see GvisorDriverOptions). */
  memoryOverheadMb: number;
  toolboxDir: string;
  socketDir: string;
}

export function ociSpec(input: OciSpecInput): Record<string, unknown> {
  const { limits, user } = input;
  // The init mounts the Sentry's pids cgroup with CAP_SYS_ADMIN, then drops it for good.
  const initCaps = [...CAPABILITIES, "CAP_SYS_ADMIN"];
  const periodUs = 100_000;
  const memorySize = `size=${limits.memoryMb}m`;
  return {
    ociVersion: "1.0.2",
    process: {
      user: { uid: 0, gid: 0 },
      args: [
        GUEST_INIT,
        GUEST_CGROUP_DIR,
        String(limits.pidsMax),
        // The agent runs as the Sentry's root and starts commands as the image's user.
        "0",
        "0",
        `${TOOLBOX_MOUNT}/bin/node`,
        GUEST_AGENT,
        `${AGENT_SOCKET_DIR}/${AGENT_SOCKET_NAME}`,
        String(user.uid),
        String(user.gid),
        user.home,
      ],
      // The sandbox's environment is the commands', never the init's or the agent's own (a
      // NODE_OPTIONS or LD_PRELOAD there would run in the agent, as root): it travels under a
      // prefix the agent strips (guest-agent.ts).
      env: [
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
        // Else runsc fills in root's, the host's own HOME.
        "HOME=/",
        ...Object.entries(input.env).map(([key, value]) => `${SANDBOX_ENV_PREFIX}${key}=${value}`),
      ],
      cwd: "/",
      capabilities: {
        bounding: initCaps,
        effective: initCaps,
        permitted: initCaps,
        inheritable: [],
        ambient: [],
      },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 4096, soft: 4096 }],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: false },
    hostname: input.hostname,
    mounts: [
      { destination: "/proc", type: "proc", source: "proc" },
      { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755"] },
      { destination: "/dev/pts", type: "devpts", source: "devpts" },
      // Memory file systems of the Sentry, each at most the sandbox's memory. Without its own
      // /tmp mount runsc puts an unbounded one there.
      {
        destination: "/tmp",
        type: "tmpfs",
        source: "tmpfs",
        options: ["nosuid", "nodev", "mode=1777", memorySize],
      },
      {
        destination: "/dev/shm",
        type: "tmpfs",
        source: "shm",
        options: ["nosuid", "nodev", "mode=1777", memorySize],
      },
      { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
      { destination: TOOLBOX_MOUNT, type: "bind", source: input.toolboxDir, options: ["rbind", "ro"] },
      { destination: AGENT_SOCKET_DIR, type: "bind", source: input.socketDir, options: ["rbind"] },
    ],
    linux: {
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
      cgroupsPath: input.cgroupsPath,
      resources: {
        memory: { limit: (limits.memoryMb + input.memoryOverheadMb) * 1024 * 1024 },
        cpu: { quota: Math.max(1000, Math.round(limits.cpu * periodUs)), period: periodUs },
        pids: { limit: hostPidsLimit(limits.pidsMax) },
      },
    },
  };
}
