/**
 * The escape-probe suite: black-box attempts, from INSIDE real sandboxes, to reach the host,
 * other sandboxes, the kernel and the network, or to exhaust what is shared. Every driver runs
 * it like the driver contract (`runEscapeProbes("name", setup)`); a driver that cannot run a
 * probe skips it by id with a stated reason, so the gap shows in every report.
 *
 * A probe passes when the hole is closed. A probe that fails is a hole (or a probe that cannot
 * tell, which its message says): probes are never weakened to pass.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import type { EscapeProbe, EscapeProbeOptions, EscapeProbeSetup } from "./escape-probe-context.js";
import { EscapeProbeContext } from "./escape-probe-context.js";
import { ESCAPE_PROBES } from "./escape-probe-ids.js";
import { descriptorProbes } from "./escape-probes-descriptors.js";
import { environmentProbes } from "./escape-probes-environment.js";
import { hostFileProbes } from "./escape-probes-host-files.js";
import { kernelProbes } from "./escape-probes-kernel.js";
import { limitProbes } from "./escape-probes-limits.js";
import { networkProbes } from "./escape-probes-network.js";
import { otherSandboxProbes } from "./escape-probes-other-sandboxes.js";

export const ALL_ESCAPE_PROBES: readonly EscapeProbe[] = [
  ...hostFileProbes,
  ...environmentProbes,
  ...descriptorProbes,
  ...otherSandboxProbes,
  ...kernelProbes,
  ...limitProbes,
  ...networkProbes,
];

/** Every id has exactly one probe, in the order of ESCAPE_PROBES. */
function orderedProbes(): EscapeProbe[] {
  const byId = new Map<string, EscapeProbe>();
  for (const probe of ALL_ESCAPE_PROBES) {
    if (byId.has(probe.id)) throw new Error(`escape probe "${probe.id}" is defined twice`);
    byId.set(probe.id, probe);
  }
  return ESCAPE_PROBES.map((id) => {
    const probe = byId.get(id);
    if (probe === undefined) throw new Error(`escape probe "${id}" has no definition`);
    return probe;
  });
}

export function runEscapeProbes(
  name: string,
  setup: () => Promise<EscapeProbeSetup>,
  options: EscapeProbeOptions = {},
): void {
  describe(`escape probes: ${name}`, () => {
    const context = new EscapeProbeContext(options.limits, options.image);
    const timeoutMs = options.timeoutMs ?? 60_000;

    beforeAll(async () => {
      await context.start(await setup());
    });
    afterAll(async () => {
      await context.stop();
    });

    for (const probe of orderedProbes()) {
      const title = `${probe.id}: ${probe.title}`;
      const reason = options.skip?.[probe.id];
      if (reason !== undefined) {
        if (reason.trim().length === 0) throw new Error(`skipping escape probe "${probe.id}" needs a reason`);
        it.skip(`${title} (skipped: ${reason})`, () => undefined);
        continue;
      }
      it(
        title,
        async (test) => {
          await probe.run(context, (why) => test.skip(why));
        },
        probe.slow === true ? timeoutMs * 2 : timeoutMs,
      );
    }
  });
}
