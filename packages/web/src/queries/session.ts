import type { QueryClient } from "@tanstack/react-query";
import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { setCsrfToken } from "../api/http";
import { polydev } from "../api/polydev";
import type { Session } from "../api/types";
import { isUnauthorized } from "./errors";

export const sessionKey = ["session"] as const;

/** The signed-in session, or null when there is none (a 401 is an answer here, not an error). */
export const sessionQuery = () =>
  queryOptions({
    queryKey: sessionKey,
    queryFn: async ({ signal }): Promise<Session | null> => {
      try {
        const session = await polydev.auth.session({ signal });
        setCsrfToken(session.csrfToken);
        return session;
      } catch (error) {
        if (isUnauthorized(error)) {
          setCsrfToken(undefined);
          return null;
        }
        throw error;
      }
    },
    staleTime: 60_000,
    retry: false,
  });

/**
 * Another user's data must not linger in the cache. The session query itself stays: the app is
 * subscribed to it, and clearing it would detach that subscription.
 */
function forgetEverythingButTheSession(client: QueryClient): void {
  client.removeQueries({ predicate: (query) => query.queryKey[0] !== sessionKey[0] });
}

export type SignIn = { name: string; password: string } | { apiKey: string } | { idToken: string };

export function useSignIn() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: SignIn) => polydev.auth.signIn(body),
    onSuccess: (session) => {
      setCsrfToken(session.csrfToken);
      forgetEverythingButTheSession(client);
      client.setQueryData(sessionKey, session);
    },
  });
}

export function useSignOut() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: async () => {
      try {
        await polydev.auth.signOut();
      } catch (error) {
        // Already signed out (expired, or signed out in another tab) is what was asked for.
        if (!isUnauthorized(error)) throw error;
      }
    },
    onSuccess: () => {
      setCsrfToken(undefined);
      client.setQueryData(sessionKey, null);
      forgetEverythingButTheSession(client);
    },
  });
}
