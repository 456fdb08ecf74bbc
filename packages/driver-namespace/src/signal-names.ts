/** Signal numbers the exec server reports, as Node's names (the first name wins for aliases). */
import { constants } from "node:os";

const SIGNAL_NAMES = new Map<number, NodeJS.Signals>();
for (const [name, number] of Object.entries(constants.signals) as [NodeJS.Signals, number][]) {
  if (!SIGNAL_NAMES.has(number)) SIGNAL_NAMES.set(number, name);
}

export function signalNameOf(signo: number): NodeJS.Signals | undefined {
  return SIGNAL_NAMES.get(signo);
}
