import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useId, useState } from "react";
import type { FileEntry } from "../api/types";
import {
  directoryQuery,
  downloadUrl,
  filePreviewQuery,
  useMakeDirectory,
  useRemovePath,
  useUploadFile,
} from "../queries/files";
import { ConfirmButton } from "./confirm-button";
import { ErrorNotice } from "./error-notice";
import { PREVIEW_BYTES } from "./file-preview";
import { formatBytes, formatTime } from "./format";
import { FileIcon, FolderIcon } from "./icons";

/** Larger files are only offered as a download. */
const VIEWABLE_BYTES = PREVIEW_BYTES;

function join(dir: string, name: string): string {
  return dir === "." || dir === "" ? name : `${dir.replace(/\/$/, "")}/${name}`;
}

function parent(dir: string): string {
  const parts = dir.split("/").filter(Boolean);
  parts.pop();
  return parts.length === 0 ? "." : parts.join("/");
}

/** Browse the sandbox's home: directories, text files, upload, download, mkdir, delete. */
export function FileBrowser({ sandboxId }: { sandboxId: string }) {
  const [dir, setDir] = useState(".");
  const [viewing, setViewing] = useState<FileEntry | null>(null);
  const listing = useQuery(directoryQuery(sandboxId, dir));
  const remove = useRemovePath(sandboxId);
  const crumbs = dir === "." ? [] : dir.split("/").filter(Boolean);

  const open = (next: string): void => {
    setDir(next);
    setViewing(null);
  };

  const entries = [...(listing.data?.items ?? [])].sort((a, b) =>
    a.type === b.type
      ? a.name.localeCompare(b.name)
      : a.type === "directory"
        ? -1
        : b.type === "directory"
          ? 1
          : 0,
  );

  return (
    <div className="files">
      <nav className="crumbs" aria-label="Folder">
        <button type="button" className="link-button" onClick={() => open(".")}>
          Home
        </button>
        {crumbs.map((part, index) => (
          <span key={crumbs.slice(0, index + 1).join("/")}>
            <span className="crumb-sep">/</span>
            <button
              type="button"
              className="link-button"
              onClick={() => open(crumbs.slice(0, index + 1).join("/"))}
            >
              {part}
            </button>
          </span>
        ))}
      </nav>
      <div className="toolbar">
        <UploadControl sandboxId={sandboxId} dir={dir} />
        <MakeDirectoryForm sandboxId={sandboxId} dir={dir} />
        <button type="button" className="button button-small" onClick={() => void listing.refetch()}>
          Refresh
        </button>
      </div>
      {remove.error ? <ErrorNotice error={remove.error} title="Could not delete" /> : null}
      {listing.error ? <ErrorNotice error={listing.error} title="Could not list this folder" /> : null}
      {listing.isPending ? <p className="muted">Loading…</p> : null}
      {listing.data ? (
        <div className="table-wrap">
          <table className="table" aria-label="Files">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" className="num">
                  Size
                </th>
                <th scope="col" className="hide-narrow">
                  Modified
                </th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {dir !== "." ? (
                <tr>
                  <td colSpan={4}>
                    <button type="button" className="link-button" onClick={() => open(parent(dir))}>
                      ↑ Up one folder
                    </button>
                  </td>
                </tr>
              ) : null}
              {entries.length === 0 ? (
                <tr>
                  <td colSpan={4} className="muted">
                    This folder is empty.
                  </td>
                </tr>
              ) : null}
              {entries.map((entry) => {
                const path = join(dir, entry.name);
                return (
                  <tr key={entry.name} data-file={entry.name}>
                    <td>
                      {entry.type === "directory" ? (
                        <button type="button" className="link-button" onClick={() => open(path)}>
                          <FolderIcon /> {entry.name}/
                        </button>
                      ) : entry.type === "file" && entry.sizeBytes <= VIEWABLE_BYTES ? (
                        <button
                          type="button"
                          className="link-button"
                          onClick={() => setViewing({ ...entry, path })}
                        >
                          <FileIcon /> {entry.name}
                        </button>
                      ) : (
                        <span>
                          <FileIcon /> {entry.name}
                        </span>
                      )}
                    </td>
                    <td className="num">{entry.type === "directory" ? "" : formatBytes(entry.sizeBytes)}</td>
                    <td className="hide-narrow muted">{formatTime(entry.modifiedAt)}</td>
                    <td className="actions-cell">
                      <div className="actions">
                        {entry.type === "file" ? (
                          <a
                            className="button button-small"
                            href={downloadUrl(sandboxId, path)}
                            download={entry.name}
                          >
                            Download
                          </a>
                        ) : null}
                        <ConfirmButton
                          label="Delete"
                          title={`Delete ${entry.name}?`}
                          confirmLabel="Delete"
                          disabled={remove.isPending}
                          onConfirm={() => remove.mutate({ path, directory: entry.type === "directory" })}
                        >
                          {entry.type === "directory"
                            ? "The folder and everything in it will be removed from the sandbox."
                            : "The file will be removed from the sandbox."}
                        </ConfirmButton>
                      </div>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : null}
      {viewing ? <FileViewer sandboxId={sandboxId} entry={viewing} onClose={() => setViewing(null)} /> : null}
    </div>
  );
}

function FileViewer({
  sandboxId,
  entry,
  onClose,
}: {
  sandboxId: string;
  entry: FileEntry;
  onClose: () => void;
}) {
  const content = useQuery(filePreviewQuery(sandboxId, entry.path));
  const preview = content.data;
  return (
    <section className="viewer" aria-label={`Contents of ${entry.name}`}>
      <header className="viewer-head">
        <h3>{entry.path}</h3>
        <div className="actions">
          <a className="button button-small" href={downloadUrl(sandboxId, entry.path)} download={entry.name}>
            Download
          </a>
          <button type="button" className="button button-small" onClick={onClose}>
            Close
          </button>
        </div>
      </header>
      {content.error ? <ErrorNotice error={content.error} title="Could not read the file" /> : null}
      {content.isPending ? <p className="muted">Loading…</p> : null}
      {preview?.kind === "binary" ? (
        <p className="muted" data-testid="binary-file">
          This is a binary file ({formatBytes(entry.sizeBytes)}): it is not shown as text. Download it to open
          it.
        </p>
      ) : null}
      {preview?.kind === "text" ? <pre className="viewer-text">{preview.text}</pre> : null}
      {preview?.truncated ? (
        <p className="muted small">
          Only the first {formatBytes(PREVIEW_BYTES)} are shown; download the file for all of it.
        </p>
      ) : null}
    </section>
  );
}

function UploadControl({ sandboxId, dir }: { sandboxId: string; dir: string }) {
  const upload = useUploadFile(sandboxId);
  const [progress, setProgress] = useState<{ name: string; fraction: number } | null>(null);
  const inputId = useId();
  return (
    <div className="upload">
      <input
        id={inputId}
        type="file"
        className="visually-hidden"
        data-testid="upload-input"
        onChange={(event) => {
          const file = event.currentTarget.files?.[0];
          event.currentTarget.value = "";
          if (!file) return;
          setProgress({ name: file.name, fraction: 0 });
          upload.mutate(
            {
              path: join(dir, file.name),
              file,
              onProgress: (fraction) => setProgress({ name: file.name, fraction }),
            },
            { onSettled: () => setProgress(null) },
          );
        }}
      />
      <label htmlFor={inputId} className="button button-small button-primary">
        Upload file
      </label>
      {progress ? (
        <span className="upload-progress" role="status">
          Uploading {progress.name}
          <progress value={progress.fraction} max={1} /> {Math.round(progress.fraction * 100)}%
        </span>
      ) : null}
      {upload.isSuccess && !progress ? (
        <span className="muted small" role="status">
          Uploaded {upload.data.path} ({formatBytes(upload.data.sizeBytes)})
        </span>
      ) : null}
      {upload.error ? <ErrorNotice error={upload.error} title="Upload failed" /> : null}
    </div>
  );
}

function MakeDirectoryForm({ sandboxId, dir }: { sandboxId: string; dir: string }) {
  const mkdir = useMakeDirectory(sandboxId);
  const [name, setName] = useState("");
  const inputId = useId();
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    const trimmed = name.trim();
    if (!trimmed) return;
    mkdir.mutate(join(dir, trimmed), { onSuccess: () => setName("") });
  };
  return (
    <form className="inline-form" onSubmit={submit}>
      <label htmlFor={inputId} className="visually-hidden">
        New folder name
      </label>
      <input
        id={inputId}
        className="input input-small"
        placeholder="new-folder"
        value={name}
        onChange={(event) => setName(event.target.value)}
      />
      <button type="submit" className="button button-small" disabled={mkdir.isPending || name.trim() === ""}>
        {mkdir.isPending ? "Creating…" : "New folder"}
      </button>
      {mkdir.error ? <ErrorNotice error={mkdir.error} title="Could not create the folder" /> : null}
    </form>
  );
}
