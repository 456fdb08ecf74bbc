// Builds, once per host, what image sandboxes need (the setup step's part of images): the default
// image polydev/base from Debian's packages and the /opt/polydev toolbox, into the host-wide cache
// the server reads (POLYDEV_IMAGE_CACHE_DIR). Each is keyed by its inputs: a rerun is a no-op.
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  baseImageEntryName,
  buildEnvironmentFrom,
  ensureBaseRootfs,
  ensureToolbox,
  toolboxEntryName,
} from "../packages/images/dist/index.js";

const cacheDir = process.env.POLYDEV_IMAGE_CACHE_DIR || "/var/cache/polydev/images";
const say = (line) => process.stdout.write(`polydev setup: ${line}\n`);

if (["off", "false", "0"].includes((process.env.POLYDEV_IMAGES ?? "").toLowerCase())) process.exit(0);
if (process.getuid?.() !== 0 || !existsSync("/usr/sbin/mkfs.xfs") || !existsSync("/usr/bin/mmdebstrap")) {
  say("skipping the default image (needs root, xfsprogs and mmdebstrap): sandboxes will be host views");
  process.exit(0);
}
const env = buildEnvironmentFrom(process.env);
let lines = 0;
let last = Date.now();
const progress = (what) => () => {
  lines += 1;
  if (Date.now() - last > 15_000) {
    last = Date.now();
    say(`${what}: ${lines} steps so far`);
  }
};
const cached =
  existsSync(join(cacheDir, baseImageEntryName())) && existsSync(join(cacheDir, await toolboxEntryName()));
if (cached) process.exit(0);
const started = Date.now();
say(`building the default image polydev/base and the toolbox (once per host: a few minutes) in ${cacheDir}`);
const [base, toolbox] = await Promise.all([
  ensureBaseRootfs(cacheDir, { env, onProgress: progress("building polydev/base") }),
  ensureToolbox(cacheDir, { env, onProgress: progress("building the toolbox") }),
]);
say(`images ready in ${Math.round((Date.now() - started) / 1000)} s: ${base}, ${toolbox}`);
