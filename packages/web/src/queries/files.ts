import { queryOptions, useMutation, useQueryClient } from "@tanstack/react-query";
import { apiUrl, requestNothing, uploadWithProgress } from "../api/http";
import { polydev } from "../api/polydev";
import type { FilePreview } from "../components/file-preview";
import { readPreview } from "../components/file-preview";

const enc = encodeURIComponent;
const filesKey = (sandboxId: string) => ["files", sandboxId] as const;

export const directoryQuery = (sandboxId: string, path: string) =>
  queryOptions({
    queryKey: [...filesKey(sandboxId), "dir", path],
    queryFn: ({ signal }) => polydev.sandboxes.listFiles(sandboxId, path, { signal }),
  });

/** The file viewer's preview: text, or binary (offered as a download); at most PREVIEW_BYTES read. */
export const filePreviewQuery = (sandboxId: string, path: string) =>
  queryOptions({
    queryKey: [...filesKey(sandboxId), "preview", path],
    queryFn: async ({ signal }): Promise<FilePreview> => {
      const body = new Response(await polydev.sandboxes.readFile(sandboxId, path, { signal })).body;
      return body ? readPreview(body) : { kind: "text", text: "", truncated: false };
    },
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
