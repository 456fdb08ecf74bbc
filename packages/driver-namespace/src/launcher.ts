import type { Socket } from "node:net";
import type { LaunchedProcess, LaunchRequest, NetworkMode, SandboxLauncher } from "@polydev/core";
import { EXEC_SERVER_IN_SANDBOX } from "./bwrap-args.js";
import { startOverExecServer } from "./exec-client.js";
import { SandboxBackground } from "./sandbox-background.js";
import { SandboxEgress } from "./sandbox-egress.js";
import { SandboxPorts } from "./sandbox-ports.js";

export const SANDBOX_UID = 1000;
export const SANDBOX_HOME = "/home/user";

/**
 * Starts processes inside a running sandbox, always through its own init, the exec server
 * (native/exec-server.c), over its unix socket: the process is forked inside every namespace
 * and cgroup of the sandbox, and nothing is spawned on the host. So no request value (argv,
 * environment, working directory) ever reaches a host process, and no host descriptor reaches a
 * sandbox process. Terminals are allocated inside the sandbox too, background processes keep
 * their state there (sandbox-background.ts), and forwarded ports are served by the init's
 * subcommands (sandbox-ports.ts), as is an allow-list sandbox's egress relay (sandbox-egress.ts).
 */
export function namespaceLauncher(options: {
  /** Host path of the exec server's socket. */
  execSocket: string;
  /** Host path of the sandbox's exec directory (root-owned), where forwarding sockets go. */
  execDir: string;
  /** The sandbox's host uid: forwarding sockets are its alone. */
  hostUid: number;
  env: Record<string, string>;
  /** The sandbox's network: "allowlist" gives the launcher `interceptEgress`. */
  network: NetworkMode;
  /**
   * An image sandbox: root inside, commands run as `request.user ?? user`, whose home is `home`;
   * the toolbox's programs (/opt/polydev/bin) come last on PATH.
   */
  image?:
    | { user: string; home: string; env?: Record<string, string>; workdir?: string | undefined }
    | undefined;
  /** Where connections to the exec server come from and go back to (default: one per process). */
  execConnections?: { take(path: string): Socket; release(path: string, socket: Socket): void } | undefined;
}): SandboxLauncher {
  const image = options.image;
  const home = image?.home ?? SANDBOX_HOME;
  const userName = image === undefined ? "user" : image.user === "0" ? "root" : image.user;
  const baseEnv = Object.freeze({
    PATH:
      image === undefined
        ? "/usr/local/bin:/usr/bin:/bin"
        : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/polydev/bin",
    HOME: home,
    USER: userName,
    LOGNAME: userName,
    SHELL: "/bin/bash",
    LANG: "C.UTF-8",
    // CLIs that draw (claude, codex) refuse or degrade on an unset TERM; a PTY overrides it.
    TERM: "xterm-256color",
    // An image's ENV (its PATH keeps the toolbox last); HOME, USER and LOGNAME follow the user.
    ...withToolboxPath(image?.env),
    ...(image === undefined ? {} : { HOME: home, USER: userName, LOGNAME: userName }),
    ...options.env,
  });
  const { execSocket } = options;
  const start = (asked: LaunchRequest): LaunchedProcess => {
    // In an image sandbox every request names its user (the init itself is root).
    const request = image !== undefined && asked.user === undefined ? { ...asked, user: image.user } : asked;
    const pool = options.execConnections;
    if (pool === undefined) return startOverExecServer(execSocket, request);
    return startOverExecServer(pool.take(execSocket), request, (socket) => pool.release(execSocket, socket));
  };
  /** A helper of the init binary itself, with a fixed environment: nothing of the request's. */
  // In an image sandbox helpers run as its root (the host's uid of the sandbox, which owns the
  // forwarding sockets the host made); the image's other users are other host uids.
  const helper = (args: string[]): LaunchedProcess =>
    start({
      argv: [EXEC_SERVER_IN_SANDBOX, ...args],
      cwd: image === undefined ? home : "/",
      env: { PATH: baseEnv.PATH, HOME: home, LANG: "C.UTF-8" },
      ...(image === undefined ? {} : { user: "root" }),
    });
  const ports = new SandboxPorts(helper, options.execDir, options.hostUid);
  const launcher: SandboxLauncher = {
    home,
    ...(image?.workdir === undefined || image.workdir === "" ? {} : { workdir: image.workdir }),
    baseEnv,
    // The init binary is bound read-only into every sandbox: file operations need nothing from
    // the image (native/file-ops.c).
    fileHelper: Object.freeze([EXEC_SERVER_IN_SANDBOX, "--file"]),
    start,
    background: new SandboxBackground(start, helper),
    connect: (port: number, signal?: AbortSignal) => ports.connect(port, signal),
    listen: (port: number, onConnection: Parameters<SandboxLauncher["listen"]>[1], signal?: AbortSignal) =>
      ports.listen(port, onConnection, signal),
  };
  // Only where --egress-setup confined the network: elsewhere the agent answers
  // feature_unavailable.
  if (options.network === "allowlist") {
    const egress = new SandboxEgress(helper, options.execDir, options.hostUid);
    launcher.interceptEgress = (onConnection, signal) => egress.intercept(onConnection, signal);
  }
  return Object.freeze(launcher);
}

/** The image's environment, its PATH (if any) ending with the toolbox's programs. */
function withToolboxPath(env: Record<string, string> | undefined): Record<string, string> {
  if (env === undefined) return {};
  const path = env.PATH;
  if (path === undefined || path.split(":").includes("/opt/polydev/bin")) return { ...env };
  return { ...env, PATH: `${path}:/opt/polydev/bin` };
}
