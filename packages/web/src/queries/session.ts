import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { requestJson, requestNothing, setCsrfToken } from "../api/http";
import type { Session } from "../api/types";
import { isUnauthorized } from "./errors";

export const sessionKey = ["session"] as const;

/** The signed-in session, or null when there is none (a 401 is an answer here, not an error). */
export const sessionQuery = () =>
  queryOptions({
    queryKey: sessionKey,
    queryFn: async ({ signal }): Promise<Session | null> => {
      try {
        const session = await requestJson<Session>("GET", "/v1/auth/session", { signal });
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

export type SignIn = { name: string; password: string } | { apiKey: string };

export function useSignIn() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: SignIn) => requestJson<Session>("POST", "/v1/auth/session", { body }),
    onSuccess: (session) => {
      setCsrfToken(session.csrfToken);
      client.clear();
      client.setQueryData(sessionKey, session);
    },
  });
}

export function useSignOut() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: () => requestNothing("DELETE", "/v1/auth/session"),
    onSettled: () => {
      setCsrfToken(undefined);
      client.clear();
      client.setQueryData(sessionKey, null);
    },
  });
}
