/**
 * Master-key rotation for the secrets webhooks and MCP servers keep (sealed by the vault like
 * provider credentials, but in their own tables): re-wrapped under the current key by
 * `polydev keys rotate`, and counted, so a key is retired only when none of them uses it.
 */
import type { Store } from "@polydev/core";
import type { EnvelopeVault } from "@polydev/vault";

export interface RewrapResult {
  id: string;
  ok: boolean;
  error?: string;
}

/** The vault owner a webhook's secret and an MCP server's values are bound to. */
export const webhookSecretOwner = (userId: string, id: string) => ({
  ownerId: userId,
  provider: `webhook:${id}`,
});
export const mcpSecretOwner = (userId: string, id: string) => ({ ownerId: userId, provider: `mcp:${id}` });

export async function rewrapHookSecrets(store: Store, vault: EnvelopeVault): Promise<RewrapResult[]> {
  await vault.refresh();
  const current = vault.currentKeyId();
  const results: RewrapResult[] = [];
  const rewrap = async (
    id: string,
    sealed: string,
    owner: { ownerId: string; provider: string },
    replace: (previous: string, next: string) => Promise<boolean>,
  ): Promise<void> => {
    if (vault.keyIdOf(sealed) === current) return;
    try {
      const ok = await replace(sealed, vault.rewrap(sealed, owner));
      results.push(ok ? { id, ok } : { id, ok, error: "changed meanwhile; run again" });
    } catch (error) {
      results.push({ id, ok: false, error: error instanceof Error ? error.message : String(error) });
    }
  };
  for (const webhook of await store.webhooks.listAll())
    await rewrap(
      webhook.id,
      webhook.sealedSecret,
      webhookSecretOwner(webhook.userId, webhook.id),
      (previous, next) => store.webhooks.replaceSecret(webhook.id, previous, next),
    );
  for (const server of await store.mcpServers.listAll()) {
    if (server.sealed === null) continue;
    await rewrap(server.id, server.sealed, mcpSecretOwner(server.userId, server.id), (previous, next) =>
      store.mcpServers.replaceSealed(server.id, previous, next),
    );
  }
  return results;
}

/** How many webhook and MCP secrets are sealed under `keyId`. */
export async function countHookSecretsByKeyId(
  store: Store,
  vault: EnvelopeVault,
  keyId: string,
): Promise<number> {
  const sealed = [
    ...(await store.webhooks.listAll()).map((w) => w.sealedSecret),
    ...(await store.mcpServers.listAll()).flatMap((m) => (m.sealed === null ? [] : [m.sealed])),
  ];
  return sealed.filter((record) => vault.keyIdOf(record) === keyId).length;
}
