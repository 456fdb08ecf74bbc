/**
 * Host names as the policy compares them: lower case, without a trailing dot, ASCII only
 * (an internationalised name is written in its punycode form, "xn--..."), at most 253
 * characters in labels of 1 to 63 letters, digits, hyphens or underscores (underscores occur
 * in real service names such as "_acme-challenge").
 */
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

export const MAX_NAME_LENGTH = 253;

/** The name in its canonical form, or undefined when it is not a valid host name. */
export function normalizeName(text: string): string | undefined {
  let name = text.toLowerCase();
  if (name.endsWith(".")) name = name.slice(0, -1);
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return undefined;
  const labels = name.split(".");
  if (!labels.every((label) => LABEL.test(label))) return undefined;
  // A name made only of digits and dots is an IPv4 address written as a name; it is never a
  // name (so "Host: 10.0.0.1" is a connection without a name, under the CIDR rules).
  if (labels.every((label) => /^\d+$/.test(label))) return undefined;
  return name;
}

/** For audit records: what the sandbox sent, bounded, whether or not it is a valid name. */
export function displayName(text: string): string {
  const clean = text.replace(/[^\x21-\x7e]/g, "?");
  return clean.length > MAX_NAME_LENGTH ? `${clean.slice(0, MAX_NAME_LENGTH)}…` : clean;
}
