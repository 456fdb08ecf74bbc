import { useQuery } from "@tanstack/react-query";
import type { KeyboardEvent } from "react";
import { lazy, Suspense, useRef, useState } from "react";
import { ConfirmButton } from "../components/confirm-button";
import { ErrorNotice } from "../components/error-notice";
import { FileBrowser } from "../components/file-browser";
import { formatAge, formatMb, networkLabel } from "../components/format";
import { LogsView } from "../components/logs-view";
import { NetworkPanel } from "../components/network-panel";
import { PortsPanel } from "../components/ports-panel";
import { SandboxStats } from "../components/sandbox-stats";
import { StateBadge } from "../components/state-badge";
import { errorCode } from "../queries/errors";
import { imageListQuery, useSnapshotSandbox } from "../queries/images";
import type { PowerAction } from "../queries/sandboxes";
import {
  sandboxQuery,
  serverDriversQuery,
  useDestroySandbox,
  useForkSandbox,
  useSandboxPower,
} from "../queries/sandboxes";
import { Link, navigate } from "../router";

// xterm.js is most of the bundle; only this page needs it, so it loads with the page.
const TerminalView = lazy(() =>
  import("../components/terminal-view").then((module) => ({ default: module.TerminalView })),
);

const TABS = [
  { id: "terminal", label: "Terminal" },
  { id: "files", label: "Files" },
  { id: "network", label: "Network" },
  { id: "ports", label: "Ports" },
  { id: "logs", label: "Logs" },
] as const;
type Tab = (typeof TABS)[number]["id"];

export function SandboxPage({ id }: { id: string }) {
  const sandbox = useQuery(sandboxQuery(id));
  const destroy = useDestroySandbox();
  const power = useSandboxPower();
  const fork = useForkSandbox();
  const snapshot = useSnapshotSandbox();
  const drivers = useQuery(serverDriversQuery()).data ?? [];
  // What this sandbox's own driver can do (drivers differ: one may fork, another not).
  const features = drivers.find((driver) => driver.name === sandbox.data?.driver)?.features ?? [];
  const digest = sandbox.data?.image ?? null;
  const images = useQuery(imageListQuery(features.includes("images") && digest !== null));
  const [tab, setTab] = useState<Tab>("terminal");
  const tabRefs = useRef<(HTMLButtonElement | null)[]>([]);

  if (sandbox.error) {
    return (
      <section className="card">
        <h1>Sandbox {id}</h1>
        <ErrorNotice
          error={sandbox.error}
          title={errorCode(sandbox.error) === "not_found" ? "No such sandbox" : "Could not load the sandbox"}
        />
        <Link href="/">Back to your sandboxes</Link>
      </section>
    );
  }
  if (!sandbox.data) return <p className="muted">Loading…</p>;
  const box = sandbox.data;
  const live = box.state === "running";
  // Stop, start and fork only where the server's driver keeps disks ("durable") or forks them.
  const durable = features.includes("durable");
  const canFork = features.includes("fork") && ["running", "hibernated", "stopped"].includes(box.state);
  // A snapshot copies the disk of a sandbox made from an image; a host view has none.
  const canSnapshot =
    features.includes("snapshot") &&
    box.image !== null &&
    ["running", "hibernated", "stopped"].includes(box.state);
  // The digest names the image; a name that still points at it reads better (any of them).
  const imageName = images.data?.images.find((i) => i.digest === box.image)?.name;
  const takeSnapshot = (): void => {
    const name = window.prompt(
      "Name of the new image (e.g. alice/my-setup:1)",
      `my/${box.name ?? "snapshot"}:1`,
    );
    if (name === null || name.trim() === "") return;
    snapshot.mutate({ id: box.id, name: name.trim() });
  };
  const powerButton = (action: PowerAction, label: string, busy: string, title: string) => (
    <button
      type="button"
      className="button button-small"
      disabled={power.isPending}
      title={title}
      onClick={() => power.mutate({ id: box.id, action })}
    >
      {power.isPending && power.variables?.action === action ? busy : label}
    </button>
  );

  // Arrow keys move between tabs, as the ARIA tabs pattern expects.
  const onTabKey = (event: KeyboardEvent, index: number): void => {
    const delta = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (delta === 0) return;
    const next = (index + delta + TABS.length) % TABS.length;
    const target = TABS[next];
    if (!target) return;
    setTab(target.id);
    tabRefs.current[next]?.focus();
  };

  return (
    <>
      <div className="page-head page-head-row">
        <div>
          <p className="crumb-line">
            <Link href="/">Sandboxes</Link> /
          </p>
          <h1 className="mono">{box.name ?? box.id}</h1>
          {box.name ? <p className="muted small mono">{box.id}</p> : null}
          <p className="muted small">
            {box.cpu} CPU · {formatMb(box.memoryMb)} memory · {formatMb(box.diskMb)} disk · {box.pidsMax}{" "}
            processes · {networkLabel(box.network)} · {box.driver} driver · created {formatAge(box.createdAt)}{" "}
            ago
          </p>
          <p className="muted small">
            Image:{" "}
            {box.image === null ? (
              "none (a view of the host)"
            ) : (
              <span className="mono" title={box.image} data-testid="sandbox-image">
                {imageName ?? box.image.slice(0, 19)}
              </span>
            )}
          </p>
        </div>
        <div className="head-side">
          <StateBadge state={box.state} />
          <SandboxStats sandbox={box} />
          {box.state === "running"
            ? powerButton(
                "hibernate",
                "Hibernate",
                "Hibernating…",
                "Freeze every process; resume continues where they stopped",
              )
            : null}
          {box.state === "hibernated"
            ? powerButton("resume", "Resume", "Resuming…", "Thaw the sandbox's processes")
            : null}
          {durable && (box.state === "running" || box.state === "hibernated")
            ? powerButton(
                "stop",
                "Stop",
                "Stopping…",
                "End every process and keep the disk; start (or a terminal, an exec) brings it back",
              )
            : null}
          {box.state === "stopped"
            ? powerButton("start", "Start", "Starting…", "Start the sandbox again from its disk")
            : null}
          {canFork ? (
            <button
              type="button"
              className="button button-small"
              disabled={fork.isPending}
              title="A new sandbox whose disk starts as a copy of this one's"
              onClick={() =>
                fork.mutate(
                  { id: box.id, count: 1 },
                  {
                    onSuccess: (forks) => {
                      const first = forks[0];
                      if (first) navigate(`/sandboxes/${first.id}`);
                    },
                  },
                )
              }
            >
              {fork.isPending ? "Forking…" : "Fork"}
            </button>
          ) : null}
          {canSnapshot ? (
            <button
              type="button"
              className="button button-small"
              disabled={snapshot.isPending}
              title="Save this sandbox's disk, as it is now, as an image new sandboxes can start from"
              onClick={takeSnapshot}
            >
              {snapshot.isPending ? "Snapshotting…" : "Snapshot"}
            </button>
          ) : null}
          {box.state !== "destroyed" && box.state !== "destroying" ? (
            <ConfirmButton
              label="Destroy"
              title={`Destroy ${box.id}?`}
              confirmLabel="Destroy sandbox"
              disabled={destroy.isPending}
              onConfirm={() => destroy.mutate(box.id, { onSuccess: () => navigate("/") })}
            >
              Every process stops and the sandbox's files are deleted. This cannot be undone.
            </ConfirmButton>
          ) : null}
        </div>
      </div>
      {box.failureReason ? (
        <div className="notice notice-error" role="alert">
          <strong>This sandbox failed:</strong> {box.failureReason}
          <p className="notice-hint">Its logs are kept below. Destroy it and create a new one.</p>
        </div>
      ) : null}
      {destroy.error ? <ErrorNotice error={destroy.error} title="Could not destroy the sandbox" /> : null}
      {power.error ? <ErrorNotice error={power.error} title="Could not change the sandbox's state" /> : null}
      {fork.error ? <ErrorNotice error={fork.error} title="Could not fork the sandbox" /> : null}
      {snapshot.error ? <ErrorNotice error={snapshot.error} title="Could not take the snapshot" /> : null}
      {snapshot.data ? (
        <p className="notice notice-good" role="status">
          Saved as image <span className="mono">{snapshot.data.name}</span> (
          <span className="mono">{snapshot.data.digest?.slice(0, 19) ?? "no digest yet"}</span>). Start new
          sandboxes from it, or see it among your <Link href="/images">images</Link>.
        </p>
      ) : null}
      <div className="tabs" role="tablist" aria-label="Sandbox">
        {TABS.map((t, index) => (
          <button
            key={t.id}
            ref={(el) => {
              tabRefs.current[index] = el;
            }}
            type="button"
            role="tab"
            id={`tab-${t.id}`}
            aria-selected={tab === t.id}
            aria-controls={`panel-${t.id}`}
            tabIndex={tab === t.id ? 0 : -1}
            className="tab"
            onClick={() => setTab(t.id)}
            onKeyDown={(event) => onTabKey(event, index)}
          >
            {t.label}
          </button>
        ))}
      </div>
      {/* The terminal stays mounted while hidden so switching tabs keeps the connection. */}
      <section
        id="panel-terminal"
        role="tabpanel"
        aria-labelledby="tab-terminal"
        hidden={tab !== "terminal"}
        className="panel"
      >
        {live ? (
          <Suspense fallback={<p className="muted">Loading the terminal…</p>}>
            <TerminalView sandboxId={box.id} visible={tab === "terminal"} />
          </Suspense>
        ) : box.state === "stopped" ? (
          <div className="empty">
            <p>This sandbox is stopped; its files are kept on its disk.</p>
            {powerButton("start", "Start it", "Starting…", "Start the sandbox again from its disk")}
          </div>
        ) : (
          <p className="empty">
            The terminal needs a running sandbox; this one is {box.state.replace("_", " ")}.
          </p>
        )}
      </section>
      <section
        id="panel-files"
        role="tabpanel"
        aria-labelledby="tab-files"
        hidden={tab !== "files"}
        className="panel"
      >
        {tab === "files" ? (
          live ? (
            <FileBrowser sandboxId={box.id} />
          ) : (
            <p className="empty">Files can be browsed while the sandbox is running.</p>
          )
        ) : null}
      </section>
      <section
        id="panel-network"
        role="tabpanel"
        aria-labelledby="tab-network"
        hidden={tab !== "network"}
        className="panel"
      >
        {tab === "network" ? <NetworkPanel sandbox={box} /> : null}
      </section>
      <section
        id="panel-ports"
        role="tabpanel"
        aria-labelledby="tab-ports"
        hidden={tab !== "ports"}
        className="panel"
      >
        {tab === "ports" ? (
          live ? (
            <PortsPanel sandboxId={box.id} />
          ) : (
            <p className="empty">Ports can be listed and previewed while the sandbox is running.</p>
          )
        ) : null}
      </section>
      <section
        id="panel-logs"
        role="tabpanel"
        aria-labelledby="tab-logs"
        hidden={tab !== "logs"}
        className="panel"
      >
        {tab === "logs" ? <LogsView sandboxId={box.id} /> : null}
      </section>
    </>
  );
}
