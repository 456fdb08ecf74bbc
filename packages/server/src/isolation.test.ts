import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiClient, TestServer } from "./testing/harness.js";
import { createUser, startTestServer } from "./testing/harness.js";

let t: TestServer;
let api: ApiClient;
let port: string;
beforeAll(async () => {
  t = await startTestServer();
  api = await createUser(t.api, "isolation-user");
  port = new URL(t.url).port;
});
afterAll(async () => {
  await t?.close();
});

describe("what a sandbox cannot see or reach", () => {
  it("cannot read the host's /root, /etc/shadow, the data directory or another sandbox's home", async () => {
    const other = await api.createSandbox();
    await api.exec(other, "echo secret-of-other > mine.txt");
    const id = await api.createSandbox();
    const probe = await api.exec(
      id,
      `ls /root 2>&1; cat /etc/shadow 2>&1; ls ${t.dataDir} 2>&1; find / -name mine.txt 2>/dev/null; echo end`,
    );
    expect(probe.body.stdout).not.toContain("secret-of-other");
    expect(probe.body.stdout).not.toContain("polydev.db");
    expect(probe.body.stdout).not.toMatch(/root:[^:]*:\d+/);
    expect(probe.body.stdout).toContain("end");
    const shadow = await api.exec(id, "cat /etc/shadow");
    expect(shadow.body.stdout).toBe("");
    const host = await api.exec(id, `test -e ${t.dataDir}/polydev.db && echo visible || echo hidden`);
    expect(host.body.stdout).toBe("hidden\n");
  });

  it("sees only its own processes, as an unprivileged user", async () => {
    const id = await api.createSandbox();
    const ps = await api.exec(id, "ps -e -o comm= | sort -u; id -u");
    const lines = ps.body.stdout.trim().split("\n");
    expect(lines).not.toContain("node");
    expect(lines).not.toContain("vitest");
    expect(lines.at(-1)).toBe("1000");
  });

  it("has node, git, curl and python from the host", async () => {
    const id = await api.createSandbox();
    const tools = await api.exec(
      id,
      "node -e 'console.log(1+1)' && git --version && curl --version && python3 -c 'print(3)'",
    );
    expect(tools.body.exitCode).toBe(0);
    expect(tools.body.stdout).toMatch(/^2\ngit version/);
  });

  it('with network "none" has only loopback and cannot reach the server', async () => {
    const id = await api.createSandbox({ network: "none" });
    const links = await api.exec(id, "cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '");
    expect(links.body.stdout.trim().split("\n")).toEqual(["lo"]);
    const reach = await api.exec(id, `curl -sS -m 2 http://127.0.0.1:${port}/healthz`);
    expect(reach.body.exitCode).not.toBe(0);
  });

  it('with network "egress" has a route out but still cannot reach the server on the host loopback', async () => {
    const id = await api.createSandbox({ network: "egress" });
    const route = await api.exec(id, "cat /proc/net/route | tail -n +2 | cut -f1,2");
    expect(route.body.stdout).toMatch(/tap0\t00000000/);
    for (const address of ["127.0.0.1", "10.0.2.2"]) {
      const reach = await api.exec(id, `curl -sS -m 3 http://${address}:${port}/healthz`);
      expect(reach.body.exitCode, address).not.toBe(0);
      expect(reach.body.stdout).not.toContain("ok");
    }
  });

  it("a fork bomb and a memory hog hurt only their own sandbox", async () => {
    const victim = await api.createSandbox({ pidsMax: 64, memoryMb: 64 });
    const bystander = await api.createSandbox();
    const bomb = api.exec(victim, "bomb() { bomb | bomb & }; bomb; sleep 2", { timeoutMs: 5000 });
    const hog = api.exec(victim, "python3 -c \"x = bytearray(512 * 1024 * 1024); print('survived')\"", {
      timeoutMs: 20_000,
    });
    const during = await api.exec(bystander, "echo fine");
    expect(during.body.stdout).toBe("fine\n");
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const hogResult = await hog;
    expect(hogResult.body.stdout).not.toContain("survived");
    expect(hogResult.body.exitCode).not.toBe(0);
    await bomb;
    const pids = await api.call<{ pids: number }>("GET", `/v1/sandboxes/${victim}/stats`);
    expect(pids.body.pids).toBeLessThanOrEqual(64);
  });
});
