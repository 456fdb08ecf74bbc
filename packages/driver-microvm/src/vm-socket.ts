/**
 * A socket a VM's QEMU made in its run directory, checked before the server (root) connects to
 * one it did not just see QEMU create: after a server restart the run directory has been the
 * VM uid's all along, and a QEMU taken over by its guest could have put a link to another
 * socket of the host there. Only a socket owned by the VM's own uid is connected to. (A swap
 * between the check and the connect stays possible; it needs a race won against a server that
 * reconnects rarely, from a QEMU that has already escaped its guest.)
 */
import { lstat } from "node:fs/promises";
import { basename } from "node:path";
import { PolydevError } from "@polydev/core";

export async function checkVmSocket(path: string, uid: number): Promise<string> {
  const info = await lstat(path).catch(() => undefined);
  if (info === undefined || !info.isSocket() || info.uid !== uid) {
    throw new PolydevError("sandbox_not_running", `the VM's ${basename(path)} is missing or not its own`);
  }
  return path;
}
