/**
 * `npm run bench`: every benchmark, each measuring its own baseline in the same run, printed as
 * Markdown tables. `--quick` runs fewer rounds (a smoke run).
 */
import { benchSandboxCore, sandboxCoreTable } from "./sandbox-core.js";

const quick = process.argv.includes("--quick");
const core = await benchSandboxCore({ quick });
process.stdout.write(`\n## Sandbox core\n\n${sandboxCoreTable(core)}\n`);
