import { existsSync } from "node:fs";
import type { NetworkMode } from "@polydev/core";
import { SANDBOX_HOME, SANDBOX_UID } from "./launcher.js";

/** Files of /etc the sandbox gets its own version of, passed as descriptors from FIRST_DATA_FD. */
export const ETC_REPLACEMENTS = ["passwd", "group", "hosts", "resolv.conf"] as const;
export const FIRST_DATA_FD = 4;

/** Host files that must not be readable inside even though /etc is. */
const HIDDEN_ETC_FILES = [
  "/etc/shadow",
  "/etc/gshadow",
  "/etc/shadow-",
  "/etc/gshadow-",
  "/etc/sudoers",
  "/etc/ssh",
];

/**
 * The sandbox's root: the host's /usr (read-only, so its Node, git, curl and Python are there),
 * /etc with secrets hidden and identity files replaced, fresh /proc and /dev, a private /tmp and a
 * home that is a tmpfs of exactly `diskBytes`. Every namespace is new; the init prints `ready`
 * once bubblewrap has finished building all of this — that line is the readiness handshake.
 */
export function bwrapArgs(diskBytes: number, network: NetworkMode): string[] {
  const args = [
    "--unshare-all",
    // Egress sandboxes run in a network namespace the host made (and slirp4netns serves): it
    // is owned by the host, so nothing inside can reconfigure it.
    ...(network === "egress" ? ["--share-net"] : []),
    "--new-session",
    "--uid",
    String(SANDBOX_UID),
    "--gid",
    String(SANDBOX_UID),
    "--hostname",
    "sandbox",
    "--ro-bind",
    "/usr",
    "/usr",
  ];
  for (const [link, target] of [
    ["/bin", "usr/bin"],
    ["/sbin", "usr/sbin"],
    ["/lib", "usr/lib"],
    ["/lib64", "usr/lib64"],
  ] as const) {
    if (existsSync(link)) args.push("--symlink", target, link);
  }
  args.push("--ro-bind", "/etc", "/etc");
  // bubblewrap runs as the sandbox's uid, which cannot read the root-only data directory:
  // the replacement files reach it as open descriptors instead (fd 4, 5, …).
  ETC_REPLACEMENTS.forEach((name, index) => {
    args.push("--ro-bind-data", String(FIRST_DATA_FD + index), `/etc/${name}`);
  });
  for (const hidden of HIDDEN_ETC_FILES) {
    if (!existsSync(hidden)) continue;
    args.push(...(hidden === "/etc/ssh" ? ["--tmpfs", hidden] : ["--ro-bind", "/dev/null", hidden]));
  }
  args.push(
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--perms",
    "1777",
    "--tmpfs",
    "/tmp",
    "--perms",
    "1777",
    "--tmpfs",
    "/var/tmp",
    "--tmpfs",
    "/run",
    "--size",
    String(diskBytes),
    "--perms",
    "0755",
    "--tmpfs",
    SANDBOX_HOME,
    "--chdir",
    SANDBOX_HOME,
    "--info-fd",
    "3",
    "--",
    "/bin/sh",
    "-c",
    "echo ready; exec sleep infinity",
  );
  return args;
}
