/**
 * The dashboard's one SDK client, in browser mode: no API key, so calls carry the session cookie
 * and, on unsafe methods, the CSRF token of the signed-in session.
 */
import { Polydev } from "@polydev/sdk";
import { currentCsrfToken } from "./http";

export const polydev = new Polydev({ baseUrl: window.location.origin, csrfToken: currentCsrfToken });
