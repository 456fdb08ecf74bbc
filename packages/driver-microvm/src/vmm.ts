/**
 * The one VMM interface the microvm driver drives: QEMU's `microvm` machine (qemu-vmm.ts) or
 * Firecracker (firecracker-vmm.ts). A VM is described once (VmConfig); the same description
 * boots it, restores it from a saved state (the boot snapshot, a hibernated sandbox) and
 * saves it, so what is restored always has exactly the devices it was saved with.
 */

export interface VmDisk {
  /** Seen by the guest as the block device's serial (init.sh finds its disks by it). */
  serial: "root" | "toolbox" | "changes";
  path: string;
  format: "raw" | "qcow2";
  readOnly: boolean;
}

export interface VmConfig {
  /** The VM's own directory (root-owned); `runDir` inside it belongs to the VM's uid. */
  runDir: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  memoryMb: number;
  vcpus: number;
  disks: VmDisk[];
  /** The virtio-serial port's host end (a unix socket the VMM listens on). */
  agentSocket: string;
  /** Where the guest's serial console goes: a file (boot snapshot) or nowhere (sandboxes). */
  consoleLog?: string | undefined;
  /** The VMM's own stderr, bounded by what it writes (start-up errors). */
  stderrLog: string;
  /** The unprivileged uid/gid the VMM process runs as. */
  uid: number;
  gid: number;
  /**
   * Guest RAM from a file instead of anonymous memory: `share` on writes it back (a template
   * whose save then leaves RAM out: x-ignore-shared), off maps it copy-on-write (a restore of
   * such a save). `fd`: a descriptor the VMM gets as its fd 3 (guest-ram.ts). Absent: anonymous
   * RAM, saved in the state.
   */
  memoryFile?: { path: string; share: boolean; fd?: number | undefined } | undefined;
  /** Restore instead of boot: start waiting for a saved state. */
  incoming: boolean;
  /**
   * A virtio-net NIC (network "egress", see guest-network.ts). Part of the VM's shape: a state
   * saved with it restores only into a VM with it. Without `tap` the NIC has no way out (the
   * boot snapshot's template); with it, the VMM runs in `netns` and the NIC is that tap.
   */
  network?: VmNetwork | undefined;
}

export interface VmNetwork {
  /** A network namespace bound to a file: the VMM process runs in it. */
  netns?: string;
  /** A persistent tap device in `netns` owned by the VM's uid. */
  tap?: string;
}

/**
 * How a state is written and read; both ends of one state must agree. `ignoreShared` (default:
 * whether the VM's RAM is a file) is QEMU's x-ignore-shared: RAM mapped shared stays out of the
 * state, and RAM of a block the loading VM maps shared may not be in it.
 */
export interface StateOptions {
  ignoreShared?: boolean;
}

export interface RunningVm {
  readonly pid: number;
  /** Settles when the VMM process has exited. */
  readonly exited: Promise<void>;
  /**
   * Loads a saved state (from start with `incoming`) and runs the guest, or (`run: false`)
   * leaves it paused: a fork's RAM is moved into a file that way (fork-ram.ts), never run.
   */
  restore(stateFile: string, signal?: AbortSignal, options?: StateOptions & { run?: boolean }): Promise<void>;
  pause(signal?: AbortSignal): Promise<void>;
  /** Saves a paused guest, memory included, to `stateFile`. */
  save(stateFile: string, signal?: AbortSignal, options?: StateOptions): Promise<void>;
  /** Runs a paused guest again (after a save: a fork's source carries on). */
  resume?(signal?: AbortSignal): Promise<void>;
  /**
   * Puts `overlay` (a qcow2 whose backing file is the disk's current file) on top of the disk
   * `serial` of the running VM: from then on its writes go there and the file below holds still.
   */
  addOverlay?(serial: VmDisk["serial"], overlay: string, signal?: AbortSignal): Promise<void>;
  /** Ends the VMM process (the guest is gone). */
  kill(): Promise<void>;
  /** Drops the control connection; the VM keeps running. */
  detach(): void;
}

export interface Vmm {
  readonly name: string;
  /** Whether it can give a VM a NIC (VmConfig.network). */
  readonly networks: boolean;
  /** Whether its VMs have `resume` and `addOverlay` (what a fork needs). */
  readonly forks?: boolean;
  /** What is missing on this host, or undefined when it can run VMs. */
  unavailable(): Promise<string | undefined>;
  start(config: VmConfig, signal?: AbortSignal): Promise<RunningVm>;
  /** Attaches to a VM started by an earlier process (a server restart). */
  attach(config: VmConfig, pid: number, signal?: AbortSignal): Promise<RunningVm>;
}
