/**
 * Every state change is written through the store's compare-and-set `transition` (by the
 * services, the reconciler and the warm pools alike), so watching those calls is the one place
 * that sees them all: metrics and the event stream hang off it instead of off every caller.
 * Changes written inside a transaction are reported once it has committed, never for a
 * rolled-back one. A failing observer is logged and never fails the write it watched.
 */
import type {
  RunRecord,
  RunRepository,
  SandboxRecord,
  SandboxRepository,
  Store,
  StoreRepositories,
  UsageEntry,
  UsageRepository,
} from "@polydev/core";
import type { Logger } from "pino";

export interface StoreObserver {
  /** A sandbox row was inserted (state `creating`) or moved to a new state. */
  sandboxChanged(sandbox: SandboxRecord, previous: SandboxRecord["state"] | undefined): void;
  runChanged(run: RunRecord): void;
  usageRecorded(entry: UsageEntry): void;
}

type Report = (notify: () => void) => void;

export function observeStore(store: Store, observer: StoreObserver, log: Logger): Store {
  const safely = (notify: () => void): void => {
    try {
      notify();
    } catch (error) {
      log.warn({ err: error }, "a store observer failed");
    }
  };
  const now: Report = (notify) => safely(notify);
  const outer = wrapRepositories(store, observer, now);
  return new Proxy(store, {
    get(target, property) {
      if (property === "transaction") {
        return async <T>(fn: (tx: StoreRepositories) => Promise<T>): Promise<T> => {
          const pending: (() => void)[] = [];
          const result = await target.transaction((tx) =>
            fn({ ...pickRepositories(tx), ...wrapRepositories(tx, observer, (n) => pending.push(n)) }),
          );
          for (const notify of pending) safely(notify);
          return result;
        };
      }
      if (property === "sandboxes" || property === "runs" || property === "usage") return outer[property];
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function pickRepositories(tx: StoreRepositories): StoreRepositories {
  return {
    users: tx.users,
    apiKeys: tx.apiKeys,
    sessions: tx.sessions,
    sandboxes: tx.sandboxes,
    sandboxLogs: tx.sandboxLogs,
    credentials: tx.credentials,
    gatewayTokens: tx.gatewayTokens,
    usage: tx.usage,
    runs: tx.runs,
    egressPresets: tx.egressPresets,
    egressAudit: tx.egressAudit,
    images: tx.images,
    plans: tx.plans,
    jobRuns: tx.jobRuns,
    webhooks: tx.webhooks,
    mcpServers: tx.mcpServers,
    nodes: tx.nodes,
    logins: tx.logins,
    identities: tx.identities,
    audit: tx.audit,
  };
}

function wrapRepositories(
  repos: StoreRepositories,
  observer: StoreObserver,
  report: Report,
): Pick<StoreRepositories, "sandboxes" | "runs" | "usage"> {
  const sandboxes: SandboxRepository = overriding(repos.sandboxes, {
    async insert(sandbox) {
      const row = await repos.sandboxes.insert(sandbox);
      report(() => observer.sandboxChanged(row, undefined));
      return row;
    },
    async transition(id, from, to, patch) {
      const row = await repos.sandboxes.transition(id, from, to, patch);
      // With one `from` state the previous one is known; with several, any of them it was.
      const previous = from.length === 1 ? from[0] : undefined;
      if (row) report(() => observer.sandboxChanged(row, previous));
      return row;
    },
  });
  const runs: RunRepository = overriding(repos.runs, {
    async transition(id, from, to, patch) {
      const row = await repos.runs.transition(id, from, to, patch);
      if (row) report(() => observer.runChanged(row));
      return row;
    },
  });
  const usage: UsageRepository = overriding(repos.usage, {
    async record(entry) {
      await repos.usage.record(entry);
      report(() => observer.usageRecorded(entry));
    },
  });
  return { sandboxes, runs, usage };
}

/** The repository with some methods replaced, the others bound to it. */
function overriding<T extends object>(repo: T, replaced: Partial<T>): T {
  return new Proxy(repo, {
    get(target, property) {
      if (Object.hasOwn(replaced, property)) return replaced[property as keyof T];
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
