/**
 * The pure parts of network "egress" on a microVM: how QEMU is started into the sandbox's
 * namespace, which NIC it gets, and what the guest accepts as its network request. The real
 * thing (QEMU, namespaces, slirp4netns) is egress.test.ts.
 */
import { describe, expect, it } from "vitest";
import { vmConfig } from "./boot-snapshot.js";
import { guestNetworkRequest, guestVmNetwork } from "./guest-network.js";
import { GUEST_MAC, parseNetwork } from "./link-protocol.js";
import { qemuArgs, qemuCommand } from "./qemu-vmm.js";

const shape = {
  kernel: "/cache/vmlinuz",
  initrd: "/cache/initrd",
  cmdline: "console=ttyS0",
  rootDisk: "/cache/root.ext4",
  toolboxDisk: "/cache/toolbox.ext4",
  emptyDisk: "/cache/empty.ext4",
  templateDiskBytes: 1 << 30,
  memoryMb: 448,
  vcpus: 1,
  accel: "tcg",
};
const ids = { uid: 1_600_000_123, gid: 1_600_000_123 };

describe("microvm egress plumbing", () => {
  it("gives a VM without a network no NIC, and runs QEMU directly as the VM's uid", () => {
    const config = vmConfig(shape, "/vms/a", "/vms/a/changes.qcow2", ids);
    expect(qemuArgs(config, "tcg").join(" ")).not.toMatch(/netdev|virtio-net/);
    const command = qemuCommand("/usr/bin/qemu-system-x86_64", config, "tcg");
    expect(command.file).toBe("/usr/bin/qemu-system-x86_64");
    expect(command.ids).toEqual(ids);
  });

  it("gives the template a NIC that goes nowhere, and a sandbox its tap inside its namespace", () => {
    const template = vmConfig({ ...shape, nic: true }, "/vms/t", "/vms/t/changes.qcow2", ids);
    const templateArgs = qemuArgs(template, "tcg");
    expect(templateArgs).toContain("hubport,id=net0,hubid=0");
    expect(templateArgs).toContain(`virtio-net-device,netdev=net0,mac=${GUEST_MAC}`);

    const sandbox = { ...template, network: guestVmNetwork("/state/sandboxes/s1") };
    const command = qemuCommand("/usr/bin/qemu-system-x86_64", sandbox, "tcg");
    expect(command.file).toBe("/usr/bin/nsenter");
    expect(command.ids).toEqual({});
    expect(command.args.slice(0, 5)).toEqual([
      "--net=/state/sandboxes/s1/netns-sandbox",
      `--setgid=${ids.gid}`,
      `--setuid=${ids.uid}`,
      "--",
      "/usr/bin/qemu-system-x86_64",
    ]);
    expect(command.args).toContain("tap,id=net0,ifname=vm0,script=no,downscript=no");
    // The same device as the template's: the saved state restores into it.
    expect(command.args).toContain(`virtio-net-device,netdev=net0,mac=${GUEST_MAC}`);
  });

  it("accepts the driver's network request and refuses anything else", () => {
    expect(parseNetwork(guestNetworkRequest())).toEqual({
      type: "network",
      address: "10.0.3.2/24",
      gateway: "10.0.3.1",
      nameserver: "10.0.2.3",
    });
    for (const bad of [
      { address: "10.0.3.2", gateway: "10.0.3.1", nameserver: "10.0.2.3" },
      { address: "10.0.3.2/24; reboot", gateway: "10.0.3.1", nameserver: "10.0.2.3" },
      { address: "10.0.3.2/24", gateway: "10.0.3.1 dev lo", nameserver: "10.0.2.3" },
      { address: "10.0.3.2/24", gateway: "10.0.3.1", nameserver: "1.1.1.1\nnameserver 10.9.9.9" },
      { address: "10.0.3.2/33", gateway: "10.0.3.1", nameserver: "10.0.2.3" },
    ]) {
      expect(() => parseNetwork({ type: "network", ...bad })).toThrow(/network:/);
    }
  });
});
