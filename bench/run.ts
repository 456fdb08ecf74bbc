/**
 * `npm run bench`: every benchmark, each measuring its own baseline in the same run, printed as
 * Markdown tables. `--quick` runs fewer rounds (a smoke run); `--only core|runs|egress|pool|images|gvisor|microvm|store|api|compare|preview` picks one.
 */
import { apiTable, benchApi } from "./api.js";
import { benchCompare, compareTable } from "./compare.js";
import { benchEgress, egressTable } from "./egress.js";
import { benchGvisor, gvisorTable } from "./gvisor.js";
import { benchImages, imagesTable } from "./images.js";
import { benchMicrovm, microvmTable } from "./microvm.js";
import { benchPreview, previewTable } from "./preview.js";
import { benchRuns, runsTable } from "./runs.js";
import { benchSandboxCore, sandboxCoreTable } from "./sandbox-core.js";
import { benchStoragePool, storagePoolTable } from "./storage-pool.js";
import { benchStoreBus, storeBusTable } from "./store-bus.js";

const quick = process.argv.includes("--quick");
const only = process.argv[process.argv.indexOf("--only") + 1];
if (!process.argv.includes("--only") || only === "core") {
  const core = await benchSandboxCore({ quick });
  process.stdout.write(`\n## Sandbox core\n\n${sandboxCoreTable(core)}\n`);
}
if (!process.argv.includes("--only") || only === "runs") {
  const runs = await benchRuns({ quick });
  process.stdout.write(`\n## Runs: Polydev's overhead over the CLI run directly\n\n${runsTable(runs)}\n`);
}
if (!process.argv.includes("--only") || only === "egress") {
  const egress = await benchEgress({ quick });
  process.stdout.write(`\n## Egress: a sandbox's way out versus the host's own\n\n${egressTable(egress)}\n`);
}
if (!process.argv.includes("--only") || only === "pool") {
  const pool = await benchStoragePool({ quick });
  process.stdout.write(`\n## Storage pool: sandbox disks\n\n${storagePoolTable(pool)}\n`);
}
if (!process.argv.includes("--only") || only === "images") {
  const images = await benchImages({ quick });
  process.stdout.write(`\n## Images and durable sandboxes\n\n${imagesTable(images)}\n`);
}
if (!process.argv.includes("--only") || only === "gvisor") {
  const gvisor = await benchGvisor({ quick });
  process.stdout.write(`\n## gVisor driver against raw runsc\n\n${gvisorTable(gvisor)}\n`);
}
if (!process.argv.includes("--only") || only === "store") {
  const storeBus = await benchStoreBus({ quick });
  process.stdout.write(
    `\n## Store and bus: Postgres and Redis beside SQLite and in-process\n\n${storeBusTable(storeBus)}\n`,
  );
}
if (!process.argv.includes("--only") || only === "microvm") {
  const microvm = await benchMicrovm({ quick });
  process.stdout.write(`\n## microVM driver against raw QEMU restore\n\n${microvmTable(microvm)}\n`);
}
if (!process.argv.includes("--only") || only === "api") {
  const api = await benchApi({ quick });
  process.stdout.write(`\n## API under load and events across replicas\n\n${apiTable(api)}\n`);
}
if (!process.argv.includes("--only") || only === "compare") {
  const compare = await benchCompare({ quick });
  process.stdout.write(
    `\n## Compare page: a group's last agent finished to its data ready\n\n${compareTable(compare)}\n`,
  );
}
if (!process.argv.includes("--only") || only === "preview") {
  const preview = await benchPreview({ quick });
  process.stdout.write(
    `\n## Preview URLs: a sandbox's web server through Polydev versus directly\n\n${previewTable(preview)}\n`,
  );
}
