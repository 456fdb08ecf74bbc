/** The dashboard's pages by path. */
export type Route =
  | { page: "sandboxes" }
  | { page: "sandbox"; id: string }
  | { page: "runs" }
  | { page: "run-view"; runIds: string[] }
  | { page: "group"; groupId: string }
  | { page: "images" }
  | { page: "credentials" }
  | { page: "keys" }
  | { page: "admin-audit" }
  | { page: "admin" }
  | { page: "admin-sandbox"; id: string }
  | { page: "not-found" };

export function matchRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const [first, second, ...rest] = parts;
  // The one three-part page: an admin's view of any user's sandbox.
  if (first === "admin" && second === "sandboxes" && rest.length === 1 && rest[0]) {
    return { page: "admin-sandbox", id: rest[0] };
  }
  if (rest.length > 0) return { page: "not-found" };
  if (first === undefined || (first === "sandboxes" && second === undefined)) return { page: "sandboxes" };
  if (first === "sandboxes" && second) return { page: "sandbox", id: second };
  if (first === "runs" && second === undefined) return { page: "runs" };
  if (first === "runs" && second) return { page: "run-view", runIds: second.split(",").filter(Boolean) };
  if (first === "groups" && second) return { page: "group", groupId: second };
  if (first === "images" && second === undefined) return { page: "images" };
  if (first === "credentials" && second === undefined) return { page: "credentials" };
  if (first === "admin" && second === undefined) return { page: "admin" };
  if (first === "admin" && second === "audit") return { page: "admin-audit" };
  if (first === "keys" && second === undefined) return { page: "keys" };
  return { page: "not-found" };
}
