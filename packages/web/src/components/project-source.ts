import type { AddProject } from "../api/types";

/**
 * What the add-project field means: a URL is cloned (inside the sandbox, over its egress),
 * anything else is a folder of the sandbox made a project. The server validates both.
 */
export function addProjectBody(source: string, check: string): AddProject {
  const trimmed = source.trim();
  const withCheck = check.trim() ? { check: check.trim() } : {};
  return /^(?:https?|git|ssh):\/\//i.test(trimmed)
    ? { url: trimmed, ...withCheck }
    : { path: trimmed, ...withCheck };
}
