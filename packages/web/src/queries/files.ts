import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { apiUrl, requestJson, requestNothing, requestText, uploadWithProgress } from "../api/http";
import type { FileEntry } from "../api/types";

const enc = encodeURIComponent;
const filesKey = (sandboxId: string) => ["files", sandboxId] as const;

export const directoryQuery = (sandboxId: string, path: string) =>
  queryOptions({
    queryKey: [...filesKey(sandboxId), "dir", path],
    queryFn: ({ signal }) =>
      requestJson<{ path: string; items: FileEntry[] }>("GET", `/v1/sandboxes/${enc(sandboxId)}/files`, {
        query: { path },
        signal,
      }),
  });

export const textFileQuery = (sandboxId: string, path: string) =>
  queryOptions({
    queryKey: [...filesKey(sandboxId), "text", path],
    queryFn: ({ signal }) =>
      requestText(`/v1/sandboxes/${enc(sandboxId)}/files/content`, { query: { path }, signal }),
    staleTime: 0,
  });

/** A plain link: the browser streams the download to disk with the session cookie. */
export function downloadUrl(sandboxId: string, path: string): string {
  return apiUrl(`/v1/sandboxes/${enc(sandboxId)}/files/content`, { path });
}

export function useUploadFile(sandboxId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (input: { path: string; file: Blob; onProgress: (fraction: number) => void }) =>
      uploadWithProgress<{ path: string; sizeBytes: number }>(
        `/v1/sandboxes/${enc(sandboxId)}/files/content`,
        { path: input.path },
        input.file,
        (sent, total) => input.onProgress(total > 0 ? sent / total : 1),
      ),
    onSettled: () => client.invalidateQueries({ queryKey: filesKey(sandboxId) }),
  });
}

export function useMakeDirectory(sandboxId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (path: string) =>
      requestNothing("POST", `/v1/sandboxes/${enc(sandboxId)}/files/mkdir`, { body: { path } }),
    onSettled: () => client.invalidateQueries({ queryKey: filesKey(sandboxId) }),
  });
}

export function useRemovePath(sandboxId: string) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: (entry: { path: string; directory: boolean }) =>
      requestNothing("DELETE", `/v1/sandboxes/${enc(sandboxId)}/files`, {
        query: { path: entry.path, recursive: entry.directory },
      }),
    onSettled: () => client.invalidateQueries({ queryKey: filesKey(sandboxId) }),
  });
}
