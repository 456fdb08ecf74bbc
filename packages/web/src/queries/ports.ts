/** A sandbox's listening ports and the signed links that open them on the preview origin. */
import { queryOptions, useMutation } from "@tanstack/react-query";
import { polydev } from "../api/polydev";
import { sandboxesKey } from "./sandboxes";

export const sandboxPortsQuery = (id: string) =>
  queryOptions({
    queryKey: [...sandboxesKey, "ports", id],
    queryFn: ({ signal }) => polydev.sandboxes.ports.list(id, { signal }),
    // Servers come and go as agents work: looked at again every few seconds while shown.
    refetchInterval: 5_000,
  });

export function usePreviewLink(id: string) {
  return useMutation({
    mutationFn: ({ port, share }: { port: number; share: boolean }) =>
      polydev.sandboxes.ports.previewLink(id, port, share ? { share: true } : {}),
  });
}
