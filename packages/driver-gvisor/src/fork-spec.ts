/**
 * A fork's OCI spec: its source's (so runsc restores the checkpoint into the same mounts and
 * limits), pointed at the fork's own root, agent socket directory, cgroup and network namespace.
 */
import { PolydevError } from "@polydev/core";
import { AGENT_SOCKET_DIR } from "./guest-layer.js";

export interface ForkableSpec {
  root: { path: string; readonly?: boolean };
  mounts: { destination: string; type?: string; source?: string; options?: string[] }[];
  linux: { cgroupsPath: string; namespaces: { type: string; path?: string }[] } & Record<string, unknown>;
  [key: string]: unknown;
}

export interface ForkPaths {
  rootfs: string;
  socketDir: string;
  cgroupsPath: string;
  /** The fork's own network namespace (network "egress"); absent for network "none". */
  netnsPath?: string | undefined;
}

export function retarget(spec: ForkableSpec, paths: ForkPaths): ForkableSpec {
  if (!spec.mounts.some((mount) => mount.destination === AGENT_SOCKET_DIR)) {
    throw new PolydevError("internal", "the source sandbox's spec has no agent socket mount");
  }
  return {
    ...spec,
    root: { ...spec.root, path: paths.rootfs },
    mounts: spec.mounts.map((mount) =>
      mount.destination === AGENT_SOCKET_DIR ? { ...mount, source: paths.socketDir } : mount,
    ),
    linux: {
      ...spec.linux,
      cgroupsPath: paths.cgroupsPath,
      namespaces: spec.linux.namespaces.map((namespace) =>
        namespace.type === "network"
          ? paths.netnsPath === undefined
            ? { type: "network" }
            : { type: "network", path: paths.netnsPath }
          : namespace,
      ),
    },
  };
}
