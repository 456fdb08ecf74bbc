/**
 * The namespace driver's way of closing off what `deniedDestinations()` (@polydev/egress) lists:
 * the exec server binary's --deny-routes adds "prohibit" routes for them to the sandbox's network
 * namespace, from the host, before anything in it runs.
 */
import { runNetworkHelper } from "./network-helper.js";

export function denyRoutes(binary: string, initPid: number, destinations: string[]): Promise<void> {
  return runNetworkHelper(
    binary,
    ["--deny-routes", `/proc/${initPid}/ns/net`, ...destinations],
    "could not close off denied destinations",
  );
}
