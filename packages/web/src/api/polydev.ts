/**
 * The dashboard's one SDK client, in browser mode: no API key, so calls carry the session cookie
 * and, on unsafe methods, the CSRF token of the signed-in session.
 */
import { Polydev } from "@polydev/sdk";
import { currentCsrfToken } from "./http";

export const polydev = new Polydev({
  baseUrl: window.location.origin,
  csrfToken: currentCsrfToken,
  // The SDK keeps fetch as a property and calls it as a method; the browser's fetch throws
  // "Illegal invocation" unless it is called on the window, so hand it a plain function.
  fetch: (input, init) => globalThis.fetch(input, init),
});
