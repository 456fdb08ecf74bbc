import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { polydev } from "../api/polydev";
import { sandboxesKey } from "./sandboxes";

export const imagesKey = ["images"] as const;

/** Your images and the system ones; only asked where the server has an image store. */
export const imageListQuery = (enabled = true) =>
  queryOptions({
    queryKey: [...imagesKey, "list"],
    queryFn: ({ signal }) => polydev.images.list({ signal }),
    enabled,
    // Builds and pulls finish on their own; look again until none is in progress.
    refetchInterval: (query) =>
      query.state.data?.images.some((image) => image.state === "building") ? 2000 : 30_000,
  });

export function useBuildImage() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (body: { name: string; dockerfile: string }) => polydev.images.build(body),
    onSettled: () => client.invalidateQueries({ queryKey: imagesKey }),
  });
}

export function useDeleteImage() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (name: string) => polydev.images.delete(name),
    onSettled: () => client.invalidateQueries({ queryKey: imagesKey }),
  });
}

/** A sandbox's disk, as it is now, as a new image. */
export function useSnapshotSandbox() {
  const client = useQueryClient();
  return useMutation({
    mutationFn: ({ id, name }: { id: string; name: string }) => polydev.sandboxes.snapshot(id, name),
    onSettled: async () => {
      await client.invalidateQueries({ queryKey: imagesKey });
      await client.invalidateQueries({ queryKey: sandboxesKey });
    },
  });
}

export interface FollowedLog {
  text: string;
  /** The stream ended: the build is ready or failed (or the server let a slow reader go). */
  ended: boolean;
  error: unknown;
}

/**
 * A build's log as it is written: the server keeps the answer open and sends each chunk, so the
 * text grows here without polling. A rebuild under the same name remounts the reader (a new key).
 */
export function useFollowedLog(name: string): FollowedLog {
  const [state, setState] = useState<FollowedLog>({ text: "", ended: false, error: undefined });
  useEffect(() => {
    setState({ text: "", ended: false, error: undefined });
    const controller = new AbortController();
    const follow = async (): Promise<void> => {
      for await (const chunk of polydev.images.log(name, { follow: true, signal: controller.signal })) {
        setState((previous) => ({ ...previous, text: previous.text + chunk }));
      }
    };
    follow().then(
      () => setState((previous) => ({ ...previous, ended: true })),
      (error: unknown) => {
        if (!controller.signal.aborted) setState((previous) => ({ ...previous, ended: true, error }));
      },
    );
    return () => controller.abort();
  }, [name]);
  return state;
}
