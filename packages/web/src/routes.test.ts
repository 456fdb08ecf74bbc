import { describe, expect, it } from "vitest";
import { matchRoute } from "./routes";

describe("matchRoute", () => {
  it.each([
    ["/", { page: "sandboxes" }],
    ["/sandboxes", { page: "sandboxes" }],
    ["/sandboxes/sbx_1", { page: "sandbox", id: "sbx_1" }],
    ["/sandboxes/sbx%201/", { page: "sandbox", id: "sbx 1" }],
    ["/runs", { page: "runs" }],
    ["/runs/run_a,run_b", { page: "run-view", runIds: ["run_a", "run_b"] }],
    ["/groups/grp_1", { page: "group", groupId: "grp_1" }],
    ["/groups", { page: "not-found" }],
    ["/groups/grp_1/extra", { page: "not-found" }],
    ["/images", { page: "images" }],
    ["/images/extra", { page: "not-found" }],
    ["/credentials", { page: "credentials" }],
    ["/keys", { page: "keys" }],
    ["/admin/audit", { page: "admin-audit" }],
    ["/admin", { page: "admin" }],
    ["/admin/extra", { page: "not-found" }],
    ["/admin/sandboxes/sbx_1", { page: "admin-sandbox", id: "sbx_1" }],
    ["/admin/sandboxes/sbx_1/extra", { page: "not-found" }],
    ["/nowhere", { page: "not-found" }],
  ])("%s", (path, route) => {
    expect(matchRoute(path)).toEqual(route);
  });
});
