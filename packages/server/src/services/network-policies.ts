/**
 * Which network a sandbox gets and what its allow-list says: the choice on create (else the
 * user's default, else "none"), the admin's named presets, and the effective rules (own entries
 * plus those of its presets) the egress hub enforces. Rule syntax is checked where requests are
 * parsed (http/network-schemas.ts); here only references (preset names) are checked.
 */
import type {
  Clock,
  EgressPolicy,
  EgressPresetRecord,
  NetworkChoice,
  NetworkMode,
  SandboxRecord,
  Store,
} from "@polydev/core";
import { notFound, PolydevError } from "@polydev/core";

/** What a create or a user default may say: a mode alone, or a mode with rules. */
export type NetworkInput =
  | NetworkMode
  | { mode: "none" | "egress" }
  | {
      mode: "allowlist";
      allow: string[];
      deny?: string[] | undefined;
      presets?: string[] | undefined;
    };

export interface EffectiveRules {
  allow: string[];
  deny: string[];
}

/** A mode and, for "allowlist", its rules (lists default to empty). */
export function toChoice(input: NetworkInput): NetworkChoice {
  if (typeof input === "string") {
    return input === "allowlist" ? { mode: "allowlist", allow: [], deny: [], presets: [] } : { mode: input };
  }
  if (input.mode !== "allowlist") return { mode: input.mode };
  return { mode: "allowlist", allow: input.allow, deny: input.deny ?? [], presets: input.presets ?? [] };
}

export function policyOf(choice: NetworkChoice): EgressPolicy | null {
  return choice.mode === "allowlist"
    ? { allow: choice.allow, deny: choice.deny, presets: choice.presets }
    : null;
}

export class NetworkPolicies {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  /** The network of a new sandbox: what the request names, else the user's default, else none. */
  async choose(userId: string, input: NetworkInput | undefined): Promise<NetworkChoice> {
    const choice =
      input === undefined
        ? ((await this.store.users.getNetworkDefault(userId)) ?? { mode: "none" })
        : toChoice(input);
    if (choice.mode === "allowlist") await this.requirePresets(choice.presets);
    return choice;
  }

  /** Own entries plus those of the presets it names (a preset deleted since adds nothing). */
  async effective(policy: EgressPolicy): Promise<EffectiveRules> {
    const allow = [...policy.allow];
    const deny = [...policy.deny];
    for (const name of policy.presets) {
      const preset = await this.store.egressPresets.get(name);
      if (!preset) continue;
      allow.push(...preset.allow);
      deny.push(...preset.deny);
    }
    return { allow: [...new Set(allow)], deny: [...new Set(deny)] };
  }

  /** Changes an allow-list sandbox's rules; fields left out keep their value. */
  async update(
    sandbox: SandboxRecord,
    patch: { allow?: string[] | undefined; deny?: string[] | undefined; presets?: string[] | undefined },
  ): Promise<SandboxRecord> {
    if (sandbox.network !== "allowlist" || !sandbox.egressPolicy) {
      throw new PolydevError(
        "conflict",
        `sandbox ${sandbox.id} has network "${sandbox.network}": the network mode is fixed at create; ` +
          'only an "allowlist" sandbox\'s rules can change (create a new sandbox with network {"mode": "allowlist", ...})',
      );
    }
    if (sandbox.state === "destroyed" || sandbox.state === "destroying" || sandbox.state === "failed") {
      throw new PolydevError("sandbox_not_running", `sandbox ${sandbox.id} is ${sandbox.state}`);
    }
    const next: EgressPolicy = {
      allow: patch.allow ?? sandbox.egressPolicy.allow,
      deny: patch.deny ?? sandbox.egressPolicy.deny,
      presets: patch.presets ?? sandbox.egressPolicy.presets,
    };
    await this.requirePresets(next.presets);
    const updated = await this.store.sandboxes.setEgressPolicy(sandbox.id, next, this.clock.now());
    if (!updated) throw notFound("sandbox", sandbox.id);
    return updated;
  }

  listPresets(): Promise<EgressPresetRecord[]> {
    return this.store.egressPresets.list();
  }

  async putPreset(
    name: string,
    body: { description?: string | undefined; allow: string[]; deny?: string[] | undefined },
  ): Promise<EgressPresetRecord> {
    const now = this.clock.now();
    return this.store.egressPresets.put({
      name,
      description: body.description ?? "",
      allow: body.allow,
      deny: body.deny ?? [],
      createdAt: now,
      updatedAt: now,
    });
  }

  /** Refused while a live sandbox or a user's default names it: their rules would change silently. */
  async deletePreset(name: string): Promise<void> {
    if (!(await this.store.egressPresets.get(name))) throw notFound("network preset", name);
    const users = await this.store.users.list();
    for (const user of users) {
      const choice = await this.store.users.getNetworkDefault(user.id);
      if (choice?.mode === "allowlist" && choice.presets.includes(name)) {
        throw new PolydevError(
          "conflict",
          `preset "${name}" is the default network of user ${user.name}; change that first`,
        );
      }
    }
    const live = await this.store.sandboxes.listByStates(["creating", "running", "hibernated", "stopped"]);
    const user = live.find((s) => s.egressPolicy?.presets.includes(name));
    if (user) {
      throw new PolydevError(
        "conflict",
        `preset "${name}" is in use by sandbox ${user.id}; remove it there first`,
        {
          details: { sandboxId: user.id },
        },
      );
    }
    await this.store.egressPresets.delete(name);
  }

  async setUserDefault(userId: string, input: NetworkInput | null): Promise<NetworkChoice | null> {
    if (!(await this.store.users.getById(userId))) throw notFound("user", userId);
    const choice = input === null ? null : toChoice(input);
    if (choice?.mode === "allowlist") await this.requirePresets(choice.presets);
    await this.store.users.setNetworkDefault(userId, choice);
    return choice;
  }

  async userDefault(userId: string): Promise<NetworkChoice | null> {
    if (!(await this.store.users.getById(userId))) throw notFound("user", userId);
    return this.store.users.getNetworkDefault(userId);
  }

  private async requirePresets(names: string[]): Promise<void> {
    for (const name of names) {
      if (!(await this.store.egressPresets.get(name))) {
        const known = (await this.store.egressPresets.list()).map((p) => p.name);
        throw new PolydevError(
          "invalid_request",
          `there is no network preset "${name}"; known presets: ${known.join(", ") || "(none)"}`,
        );
      }
    }
  }
}
