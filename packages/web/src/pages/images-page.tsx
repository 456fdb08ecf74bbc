import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useState } from "react";
import type { Image } from "../api/types";
import { BuildLog } from "../components/build-log";
import { ConfirmButton } from "../components/confirm-button";
import { ErrorNotice } from "../components/error-notice";
import { formatAge, formatBytes } from "../components/format";
import { StateBadge } from "../components/state-badge";
import { imageListQuery, useBuildImage, useDeleteImage } from "../queries/images";
import { serverFeaturesQuery } from "../queries/sandboxes";

// RUN steps run as the image's user ("user" in polydev/base, with passwordless sudo), as Docker would.
const STARTER_DOCKERFILE = `FROM polydev/base
RUN sudo apt-get update && sudo apt-get install -y --no-install-recommends ripgrep
ENV EDITOR=vi
`;

/** Which image's log is shown; `key` restarts the stream when the same name is built again. */
interface Shown {
  name: string;
  key: number;
}

export function ImagesPage() {
  const features = useQuery(serverFeaturesQuery());
  const [shown, setShown] = useState<Shown | undefined>(undefined);
  const show = (name: string): void => setShown((previous) => ({ name, key: (previous?.key ?? 0) + 1 }));
  const head = (
    <div className="page-head">
      <h1>Images</h1>
      <p className="muted">
        What sandboxes start from: the system image, and yours, built from a Dockerfile or snapshotted from a
        sandbox.
      </p>
    </div>
  );
  if (features.error) {
    return (
      <>
        {head}
        <ErrorNotice error={features.error} title="Could not reach Polydev" />
      </>
    );
  }
  if (!features.data) return head;
  if (!features.data.includes("images")) {
    return (
      <>
        {head}
        <section className="card">
          <p className="empty">
            This server has no image store, so its sandboxes are views of the host. An admin turns images on
            in the server's configuration (images.enabled).
          </p>
        </section>
      </>
    );
  }
  return (
    <>
      {head}
      <BuildImageForm onStarted={show} />
      {shown ? <BuildLog key={shown.key} name={shown.name} /> : null}
      <ImageList onShowLog={show} />
    </>
  );
}

function BuildImageForm({ onStarted }: { onStarted: (name: string) => void }) {
  const build = useBuildImage();
  const [name, setName] = useState("");
  const [dockerfile, setDockerfile] = useState(STARTER_DOCKERFILE);
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    const trimmed = name.trim();
    build.mutate({ name: trimmed, dockerfile }, { onSuccess: () => onStarted(trimmed) });
  };
  return (
    <section className="card" aria-labelledby="build-title">
      <h2 id="build-title">Build from a Dockerfile</h2>
      <form className="stack" onSubmit={submit}>
        <label className="field">
          <span>Image name</span>
          <input
            className="input mono"
            type="text"
            name="image-name"
            placeholder="alice/tools:1"
            required
            autoComplete="off"
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
        </label>
        <label className="field">
          <span>Dockerfile (FROM an image listed below; RUN steps run in a sandbox with internet)</span>
          <textarea
            className="input mono dockerfile"
            name="dockerfile"
            rows={8}
            spellCheck={false}
            required
            value={dockerfile}
            onChange={(e) => setDockerfile(e.target.value)}
          />
        </label>
        <div>
          <button type="submit" className="button button-primary" disabled={build.isPending}>
            {build.isPending ? "Starting the build…" : "Build image"}
          </button>
        </div>
      </form>
      {build.error ? <ErrorNotice error={build.error} title="Could not start the build" /> : null}
    </section>
  );
}

function ImageList({ onShowLog }: { onShowLog: (name: string) => void }) {
  const list = useQuery(imageListQuery());
  const remove = useDeleteImage();
  const images = list.data?.images ?? [];
  return (
    <section className="card" aria-labelledby="image-list-title">
      <h2 id="image-list-title">Your images and the system ones</h2>
      {list.error ? (
        <ErrorNotice error={list.error} title="Could not load images" onRetry={() => void list.refetch()} />
      ) : null}
      {remove.error ? (
        <ErrorNotice error={remove.error} title={`Could not delete ${remove.variables ?? "the image"}`} />
      ) : null}
      {list.isPending ? <p className="muted">Loading…</p> : null}
      {list.data && images.length === 0 ? (
        <p className="empty">No images yet. Build one above, or snapshot a sandbox.</p>
      ) : null}
      {images.length > 0 ? (
        <div className="table-wrap">
          <table className="table table-cards" aria-label="Images">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">State</th>
                <th scope="col">Size</th>
                <th scope="col" className="hide-narrow">
                  Source
                </th>
                <th scope="col" className="hide-narrow">
                  Created
                </th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {images.map((image) => (
                <ImageRow
                  key={image.id}
                  image={image}
                  deleting={remove.isPending && remove.variables === image.name}
                  onDelete={() => remove.mutate(image.name)}
                  onShowLog={() => onShowLog(image.name)}
                />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

function ImageRow({
  image,
  deleting,
  onDelete,
  onShowLog,
}: {
  image: Image;
  deleting: boolean;
  onDelete: () => void;
  onShowLog: () => void;
}) {
  return (
    <tr data-image={image.name}>
      <td>
        <span className="mono">{image.name}</span>
        {image.system ? <span className="tag">system</span> : null}
        {image.digest ? (
          <div className="small muted mono" title={image.digest}>
            {image.digest.slice(0, 19)}
          </div>
        ) : null}
      </td>
      <td>
        <StateBadge state={image.state} />
        {image.error ? <div className="small bad">{image.error}</div> : null}
      </td>
      <td className="nowrap">{image.state === "ready" ? formatBytes(image.sizeBytes) : "–"}</td>
      <td className="hide-narrow">{image.source}</td>
      <td className="hide-narrow">{formatAge(image.createdAt)} ago</td>
      <td className="actions-cell">
        <div className="actions">
          <button type="button" className="button button-small" onClick={onShowLog}>
            Log
          </button>
          {image.system ? null : (
            <ConfirmButton
              label="Delete"
              title={`Delete ${image.name}?`}
              confirmLabel="Delete image"
              disabled={deleting || image.state === "building"}
              onConfirm={onDelete}
            >
              New sandboxes can no longer start from it. Its layers go once no other image lists them.
            </ConfirmButton>
          )}
        </div>
      </td>
    </tr>
  );
}
