/**
 * In the guest (the agent, as the guest's root): an egress sandbox's NIC, configured once after
 * the restore from the boot snapshot, whose NIC is down and unaddressed. IPv6 stays off on it
 * (the router has none). The sandbox's processes cannot change any of it: they are root of a
 * user namespace only, which owns no network namespace.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import type { NetworkRequest } from "./link-protocol.js";
import { GUEST_MAC } from "./link-protocol.js";

/** busybox's, found on the PATH below (init.sh installs its applets). */
const IP = "ip";

function ip(args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(IP, args, { env: { PATH: "/bin:/sbin" }, timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(" ")}: ${stderr.slice(-500) || error.message}`));
      else resolve();
    }),
  );
}

/** The interface whose hardware address is the VM's NIC's. */
function nicName(): string {
  for (const name of readdirSync("/sys/class/net")) {
    const mac = (() => {
      try {
        return readFileSync(`/sys/class/net/${name}/address`, "utf8").trim();
      } catch {
        return "";
      }
    })();
    if (mac === GUEST_MAC) return name;
  }
  throw new Error("the VM has no NIC (its boot snapshot was made without one)");
}

export async function configureNic(request: NetworkRequest, sandboxRoot: string): Promise<void> {
  const name = nicName();
  await writeFile(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, "1").catch(() => undefined);
  await ip(["addr", "flush", "dev", name]);
  await ip(["addr", "add", request.address, "dev", name]);
  await ip(["link", "set", name, "up"]);
  await ip(["route", "replace", "default", "via", request.gateway, "dev", name]);
  // The image's own file (often a link into a resolver's run directory) gives way to ours.
  const resolv = `${sandboxRoot}/etc/resolv.conf`;
  await rm(resolv, { force: true });
  await writeFile(resolv, `nameserver ${request.nameserver}\n`, { mode: 0o644 });
}
