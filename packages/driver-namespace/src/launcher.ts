import type { Socket } from "node:net";
import type { LaunchCommand, LaunchedProcess, LaunchRequest, SandboxLauncher } from "@polydev/core";
import { startOverExecServer } from "./exec-client.js";

export const SANDBOX_UID = 1000;
export const SANDBOX_HOME = "/home/user";

// Joins every cgroup of the sandbox, then becomes nsenter: $1 is how many cgroup files follow.
export const JOIN_CGROUPS_AND_EXEC =
  'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';

/**
 * Starts processes inside a running sandbox. `start` (used by exec) asks the sandbox's own init,
 * the exec server, over its unix socket: nothing is spawned on the host, and the process is born
 * inside every namespace and cgroup of the sandbox. `command` (PTYs, background processes, file
 * scripts, and sandboxes started without the exec server) enters from the host: into its
 * cgroups first (so limits hold from the first instruction), then into all its namespaces and
 * root with nsenter, as the sandbox user. nsenter forks the command into the sandbox's pid namespace, so the command sits
 * one generation below the spawned process.
 *
 * No setpriv --no-new-privs step (it would cost an exec on every command): the host's set-uid
 * binaries and file capabilities belong to host root, which is not mapped in the sandbox's user
 * namespace, and the kernel ignores both for owners that are not mapped.
 */
export function namespaceLauncher(options: {
  initPid: number;
  procsFiles: string[];
  stateDir: string;
  env: Record<string, string>;
  /** Host path of the exec server's socket; without it every process goes through nsenter. */
  execSocket?: string | undefined;
  /** Where connections to the exec server come from and go back to (default: one per process). */
  execConnections?: { take(path: string): Socket; release(path: string, socket: Socket): void } | undefined;
}): SandboxLauncher {
  const baseEnv = Object.freeze({
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: SANDBOX_HOME,
    USER: "user",
    LOGNAME: "user",
    SHELL: "/bin/bash",
    LANG: "C.UTF-8",
    // CLIs that draw (claude, codex) refuse or degrade on an unset TERM; a PTY overrides it.
    TERM: "xterm-256color",
    ...options.env,
  });
  const prefix = [
    "-c",
    JOIN_CGROUPS_AND_EXEC,
    "sh",
    String(options.procsFiles.length),
    ...options.procsFiles,
    "/usr/bin/nsenter",
    "-t",
    String(options.initPid),
    "-U",
    "-m",
    "-u",
    "-i",
    "-n",
    "-p",
    "-C",
    "-r",
    "-w",
    "-S",
    String(SANDBOX_UID),
    "-G",
    String(SANDBOX_UID),
    "--",
    // nsenter resolves its own --wd before entering the mount namespace; env -C changes
    // directory inside, and a missing directory fails with a clear message.
    "/usr/bin/env",
  ];
  const execSocket = options.execSocket;
  const start =
    execSocket === undefined
      ? undefined
      : (request: LaunchRequest): LaunchedProcess => {
          const pool = options.execConnections;
          if (pool === undefined) return startOverExecServer(execSocket, request);
          return startOverExecServer(pool.take(execSocket), request, (socket) =>
            pool.release(execSocket, socket),
          );
        };
  return {
    ...(start === undefined ? {} : { start }),
    home: SANDBOX_HOME,
    stateDir: options.stateDir,
    baseEnv,
    command(request: LaunchRequest): LaunchCommand {
      return {
        file: "/bin/sh",
        // The init's working directory is the home, which nsenter -w inherits: the common case
        // skips one exec.
        args:
          request.cwd === SANDBOX_HOME
            ? [...prefix.slice(0, -1), ...request.argv]
            : [...prefix, `--chdir=${request.cwd}`, "--", ...request.argv],
        env: request.env,
        wrapperDepth: 1,
      };
    },
  };
}
