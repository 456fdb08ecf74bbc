import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  CredentialService,
  configFromEnv,
  countHookSecretsByKeyId,
  MASTER_KEY_FILE,
  parseConfig,
  rewrapHookSecrets,
} from "@polydev/server";
import { openSqliteStore } from "@polydev/store";
import { EnvelopeVault, loadKeyring, retireMasterKey, rotateMasterKey } from "@polydev/vault";

/** How long a retirement waits for a save that began before the rotation. */
const RETIRE_SETTLE_MS = 2000;

export const KEYS_HELP = `Usage: polydev keys ls | create NAME | revoke ID   (your API keys on the server)
       polydev keys rotate [--data-dir DIR]          (the vault's master key, on the server's host)

ls, create and revoke manage your own API keys through the API (polydev keys create --help).

rotate adds a new master key to the key file (the old keys stay, so nothing becomes unreadable),
re-wraps every stored credential under it, and retires old keys no record uses any more.
A running server picks the new key up by itself; no restart, no downtime.

With POLYDEV_MASTER_KEY set, rotate by setting a new value and running this command with the
old one still readable from the key file.
`;

const API_KEY_COMMANDS = new Set(["ls", "list", "create", "revoke", "rm"]);

export async function keys(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  if (argv[0] !== undefined && API_KEY_COMMANDS.has(argv[0])) {
    return (await import("./client/api-keys.js")).apiKeysCommand(argv, env);
  }
  const { values, positionals } = parseArgs({
    args: argv,
    options: { "data-dir": { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help || positionals[0] !== "rotate") {
    process.stdout.write(KEYS_HELP);
    return values.help ? 0 : 2;
  }
  const input = configFromEnv(env);
  if (values["data-dir"] !== undefined) input.dataDir = values["data-dir"];
  const config = parseConfig(input);
  const keyFile = join(config.dataDir, MASTER_KEY_FILE);
  const store = await openSqliteStore({ file: join(config.dataDir, "polydev.db") });
  try {
    const before = await loadKeyring({ envKey: config.masterKey, keyFile });
    const newKeyId = config.masterKey ? before.currentKeyId : await rotateMasterKey(keyFile);
    const load = () => loadKeyring({ envKey: config.masterKey, keyFile });
    const vault = new EnvelopeVault(await load(), load);
    const results = [
      ...(await new CredentialService(store, vault, config.upstreams, Date.now).rewrapAll()),
      // Webhook signing secrets and MCP servers' env and header values.
      ...(await rewrapHookSecrets(store, vault)),
    ];
    const failed = results.filter((r) => !r.ok);
    for (const result of results) {
      process.stdout.write(
        `${result.ok ? "re-wrapped" : "FAILED"} ${result.id}${result.error ? `: ${result.error}` : ""}\n`,
      );
    }
    if (!config.masterKey) {
      for (const oldKeyId of before.keys.keys()) {
        if (oldKeyId === newKeyId) continue;
        // Count twice, a moment apart: a server that read the key file just before the rotation
        // may still be saving one record under the old key.
        const count = async (): Promise<number> =>
          (await store.credentials.countByKeyId(oldKeyId)) +
          (await countHookSecretsByKeyId(store, vault, oldKeyId));
        let inUse = await count();
        if (inUse === 0) {
          await new Promise((resolve) => setTimeout(resolve, RETIRE_SETTLE_MS));
          inUse = await count();
        }
        if (inUse === 0) await retireMasterKey(keyFile, oldKeyId, 0);
        else process.stdout.write(`kept key ${oldKeyId}: ${inUse} records still use it\n`);
      }
    }
    process.stdout.write(
      `current master key: ${newKeyId}; ${results.length - failed.length} re-wrapped, ${failed.length} failed\n`,
    );
    return failed.length === 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}
