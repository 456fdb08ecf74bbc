import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { apiUrl, requestJson } from "../api/http";
import { polydev } from "../api/polydev";
import type { Credential, Login, LoginProvider, Provider } from "../api/types";
import { FINAL_LOGIN_STATES } from "../api/types";

const credentialsKey = ["credentials"] as const;
const loginsKey = ["logins"] as const;

export const credentialListQuery = () =>
  queryOptions({
    queryKey: credentialsKey,
    queryFn: ({ signal }) => polydev.credentials.list({ signal }),
  });

export function usePutApiKey() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (input: { provider: Provider; apiKey: string }) =>
      polydev.credentials.put(input.provider, input.apiKey),
    onSettled: () => client.invalidateQueries({ queryKey: credentialsKey }),
  });
}

export function useRemoveCredential() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (provider: Provider) => polydev.credentials.remove(provider),
    onSettled: () => client.invalidateQueries({ queryKey: credentialsKey }),
  });
}

export function useValidateCredential() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (provider: Provider) =>
      requestJson<Credential>("POST", `/v1/credentials/${provider}/validate`),
    onSettled: () => client.invalidateQueries({ queryKey: credentialsKey }),
  });
}

export const loginQuery = (id: string) =>
  queryOptions({
    queryKey: [...loginsKey, id],
    queryFn: ({ signal }) => polydev.logins.get(id, { signal }),
  });

export function useStartLogin() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (provider: LoginProvider) => polydev.logins.start(provider),
    onSuccess: (login) => client.setQueryData([...loginsKey, login.id], login),
  });
}

export function useSubmitLoginCode() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (input: { id: string; finish: Login["finish"]; value: string }) =>
      polydev.logins.submit(
        input.id,
        input.finish === "callback" ? { callbackUrl: input.value } : { code: input.value },
      ),
    onSuccess: (login) => {
      client.setQueryData([...loginsKey, login.id], login);
      if (login.state === "completed") void client.invalidateQueries({ queryKey: credentialsKey });
    },
  });
}

export function useCancelLogin() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (id: string) => polydev.logins.cancel(id),
    onSuccess: (login) => client.setQueryData([...loginsKey, login.id], login),
  });
}

/**
 * Follows a login's state changes (server-sent `state` events) into the query cache. EventSource
 * sends the session cookie on the same origin.
 */
export function useLoginEvents(id: string | undefined): void {
  const client = useQueryClient();
  useEffect(() => {
    if (!id) return;
    const source = new EventSource(apiUrl(`/v1/logins/${encodeURIComponent(id)}/events`));
    source.addEventListener("state", (event) => {
      const login = JSON.parse((event as MessageEvent<string>).data) as Login;
      client.setQueryData([...loginsKey, login.id], login);
      if (FINAL_LOGIN_STATES.includes(login.state)) {
        source.close();
        if (login.state === "completed") void client.invalidateQueries({ queryKey: credentialsKey });
      }
    });
    return () => source.close();
  }, [id, client]);
}
