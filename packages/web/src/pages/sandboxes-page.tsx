import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useState } from "react";
import type { CreateSandbox, Sandbox } from "../api/types";
import { ConfirmButton } from "../components/confirm-button";
import type { EgressRulesDraft } from "../components/egress-rules-fields";
import { EgressRulesFields, EMPTY_RULES, parseEntries } from "../components/egress-rules-fields";
import { ErrorNotice } from "../components/error-notice";
import { formatAge, formatMb, networkLabel } from "../components/format";
import { SandboxStats } from "../components/sandbox-stats";
import { StateBadge } from "../components/state-badge";
import { imageListQuery } from "../queries/images";
import {
  sandboxListQuery,
  serverDriversQuery,
  useCreateSandbox,
  useDestroySandbox,
} from "../queries/sandboxes";
import { Link, navigate } from "../router";

const LIVE = ["creating", "running", "hibernated", "stopped", "destroying", "failed"];

export function SandboxesPage() {
  const list = useQuery(sandboxListQuery());
  const [showEnded, setShowEnded] = useState(false);
  const items = (list.data?.items ?? []).filter((s) => showEnded || LIVE.includes(s.state));
  const endedCount =
    (list.data?.items ?? []).length - (list.data?.items ?? []).filter((s) => LIVE.includes(s.state)).length;
  return (
    <>
      <div className="page-head">
        <h1>Sandboxes</h1>
        <p className="muted">Isolated machines where your shells and agents run.</p>
      </div>
      <CreateSandboxForm />
      <section className="card" aria-labelledby="sandbox-list-title">
        <div className="card-head">
          <h2 id="sandbox-list-title">Your sandboxes</h2>
          {endedCount > 0 ? (
            <label className="check">
              <input type="checkbox" checked={showEnded} onChange={(e) => setShowEnded(e.target.checked)} />
              Show destroyed ({endedCount})
            </label>
          ) : null}
        </div>
        {list.error ? (
          <ErrorNotice
            error={list.error}
            title="Could not load sandboxes"
            onRetry={() => void list.refetch()}
          />
        ) : null}
        {list.isPending ? <p className="muted">Loading…</p> : null}
        {list.data && items.length === 0 ? (
          <p className="empty">
            No sandboxes yet. Create one above to get a shell and a place for agents to work.
          </p>
        ) : null}
        {items.length > 0 ? <SandboxTable items={items} /> : null}
      </section>
    </>
  );
}

function SandboxTable({ items }: { items: Sandbox[] }) {
  const destroy = useDestroySandbox();
  return (
    <>
      {destroy.error ? <ErrorNotice error={destroy.error} title="Could not destroy the sandbox" /> : null}
      <div className="table-wrap">
        <table className="table table-cards" aria-label="Sandboxes">
          <thead>
            <tr>
              <th scope="col">Sandbox</th>
              <th scope="col">State</th>
              <th scope="col" className="hide-narrow">
                Age
              </th>
              <th scope="col" className="hide-narrow">
                Limits
              </th>
              <th scope="col">Live use</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((sandbox) => (
              <tr key={sandbox.id} data-sandbox={sandbox.id}>
                <td>
                  <Link href={`/sandboxes/${sandbox.id}`} className="mono">
                    {sandbox.name ?? sandbox.id}
                  </Link>
                  {sandbox.metadata.purpose ? <span className="tag">{sandbox.metadata.purpose}</span> : null}
                </td>
                <td>
                  <StateBadge state={sandbox.state} />
                  {sandbox.failureReason ? <div className="small bad">{sandbox.failureReason}</div> : null}
                </td>
                <td className="hide-narrow">{formatAge(sandbox.createdAt)}</td>
                <td className="hide-narrow small">
                  {sandbox.cpu} CPU · {formatMb(sandbox.memoryMb)} · {formatMb(sandbox.diskMb)} disk ·{" "}
                  {sandbox.pidsMax} pids · {networkLabel(sandbox.network)} · {sandbox.driver}
                </td>
                <td>
                  <SandboxStats sandbox={sandbox} />
                </td>
                <td className="actions-cell">
                  <div className="actions">
                    {sandbox.state === "running" ||
                    sandbox.state === "hibernated" ||
                    sandbox.state === "stopped" ||
                    sandbox.state === "failed" ? (
                      <Link href={`/sandboxes/${sandbox.id}`} className="button button-small">
                        Open
                      </Link>
                    ) : null}
                    {sandbox.state !== "destroyed" && sandbox.state !== "destroying" ? (
                      <ConfirmButton
                        label="Destroy"
                        title={`Destroy ${sandbox.id}?`}
                        confirmLabel="Destroy sandbox"
                        disabled={destroy.isPending && destroy.variables === sandbox.id}
                        onConfirm={() => destroy.mutate(sandbox.id)}
                      >
                        Every process stops and the sandbox's files are deleted. This cannot be undone.
                      </ConfirmButton>
                    ) : null}
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function numberOrUndefined(value: string): number | undefined {
  if (value.trim() === "") return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

type NetworkMode = "none" | "egress" | "allowlist";

/** Sizes people pick most; a preset only fills the fields, which stay editable. */
const PRESETS = [
  { label: "Small", cpu: "1", memoryMb: "512", diskMb: "2048" },
  { label: "Medium", cpu: "2", memoryMb: "2048", diskMb: "8192" },
  { label: "Large", cpu: "2", memoryMb: "4096", diskMb: "20480" },
] as const;

const DEFAULT_IMAGE = "polydev/base";

function presetSummary(preset: (typeof PRESETS)[number]): string {
  return `${preset.cpu} CPU · ${formatMb(Number(preset.memoryMb))} · ${formatMb(Number(preset.diskMb))} disk`;
}

function networkMode(value: string): NetworkMode {
  return value === "egress" || value === "allowlist" ? value : "none";
}

function CreateSandboxForm() {
  const create = useCreateSandbox();
  const [name, setName] = useState("");
  const [memoryMb, setMemoryMb] = useState("512");
  const [cpu, setCpu] = useState("1");
  const [diskMb, setDiskMb] = useState("1024");
  const [pidsMax, setPidsMax] = useState("256");
  const [network, setNetwork] = useState<NetworkMode>("none");
  const [rules, setRules] = useState<EgressRulesDraft>(EMPTY_RULES);
  const drivers = useQuery(serverDriversQuery()).data ?? [];
  const [chosenDriver, setChosenDriver] = useState("");
  // "" leaves the choice to the server (its default driver, listed first).
  const driverInfo = drivers.find((d) => d.name === chosenDriver) ?? drivers[0];
  const hasImages = (driverInfo?.features ?? []).includes("images");
  const images = useQuery(imageListQuery(hasImages));
  const [chosenImage, setChosenImage] = useState<string | undefined>(undefined);
  const imageList = images.data?.images ?? [];
  const readyNames = imageList.filter((i) => i.state === "ready").map((i) => i.name);
  // Until the user picks, the server's default image when it is ready; "" leaves it to the server.
  const image = chosenImage ?? (readyNames.includes(DEFAULT_IMAGE) ? DEFAULT_IMAGE : "");
  const applyPreset = (preset: (typeof PRESETS)[number]): void => {
    setCpu(preset.cpu);
    setMemoryMb(preset.memoryMb);
    setDiskMb(preset.diskMb);
  };

  const submit = (event: FormEvent): void => {
    event.preventDefault();
    const body: CreateSandbox = {
      network:
        network === "allowlist"
          ? {
              mode: "allowlist",
              allow: parseEntries(rules.allow),
              deny: parseEntries(rules.deny),
              presets: rules.presets,
            }
          : network,
    };
    if (name.trim() !== "") body.name = name.trim();
    if (chosenDriver !== "") body.driver = chosenDriver;
    if (hasImages && image !== "") body.image = image;
    const values = { memoryMb, cpu, diskMb, pidsMax };
    for (const [key, raw] of Object.entries(values) as [keyof typeof values, string][]) {
      const n = numberOrUndefined(raw);
      if (n !== undefined) body[key] = n;
    }
    create.mutate(body, { onSuccess: (sandbox) => navigate(`/sandboxes/${sandbox.id}`) });
  };

  return (
    <section className="card" aria-labelledby="create-title">
      <h2 id="create-title">New sandbox</h2>
      <fieldset className="presets">
        <legend className="muted small">Presets</legend>
        {PRESETS.map((preset) => (
          <button
            key={preset.label}
            type="button"
            className="button button-small"
            title={presetSummary(preset)}
            aria-pressed={cpu === preset.cpu && memoryMb === preset.memoryMb && diskMb === preset.diskMb}
            onClick={() => applyPreset(preset)}
          >
            {preset.label}: {presetSummary(preset)}
          </button>
        ))}
      </fieldset>
      <form className="create-form" onSubmit={submit}>
        <label className="field">
          <span>Name (optional)</span>
          <input
            className="input"
            type="text"
            name="name"
            placeholder="my-project"
            pattern="[a-z0-9][a-z0-9\-]{0,62}"
            title="lowercase letters, digits and -, starting with a letter or digit"
            autoComplete="off"
            value={name}
            onChange={(e) => setName(e.target.value)}
          />
        </label>
        {drivers.length > 1 ? (
          <label className="field">
            <span>Isolation</span>
            <select
              className="input"
              name="driver"
              value={chosenDriver}
              onChange={(e) => setChosenDriver(e.target.value)}
            >
              {drivers.map((d) => (
                <option key={d.name} value={d.default ? "" : d.name}>
                  {d.name}
                  {d.default ? " (default)" : ""}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        {hasImages ? (
          <label className="field">
            <span>Image</span>
            <select
              className="input"
              name="image"
              value={image}
              onChange={(e) => setChosenImage(e.target.value)}
            >
              {image === "" ? <option value="">Server default</option> : null}
              {imageList.map((i) => (
                <option key={i.id} value={i.name} disabled={i.state !== "ready"}>
                  {i.name}
                  {i.state === "ready" ? "" : ` (${i.state})`}
                </option>
              ))}
            </select>
          </label>
        ) : null}
        <label className="field">
          <span>Memory (MiB)</span>
          <input
            className="input"
            type="number"
            min={32}
            step={1}
            value={memoryMb}
            onChange={(e) => setMemoryMb(e.target.value)}
          />
        </label>
        <label className="field">
          <span>CPU cores</span>
          <input
            className="input"
            type="number"
            min={0.05}
            step={0.05}
            value={cpu}
            onChange={(e) => setCpu(e.target.value)}
          />
        </label>
        <label className="field">
          <span>Disk (MiB)</span>
          <input
            className="input"
            type="number"
            min={16}
            step={1}
            value={diskMb}
            onChange={(e) => setDiskMb(e.target.value)}
          />
        </label>
        <label className="field">
          <span>Processes</span>
          <input
            className="input"
            type="number"
            min={8}
            step={1}
            value={pidsMax}
            onChange={(e) => setPidsMax(e.target.value)}
          />
        </label>
        <label className="field">
          <span>Network</span>
          <select className="input" value={network} onChange={(e) => setNetwork(networkMode(e.target.value))}>
            <option value="none">None (loopback only)</option>
            <option value="egress">Internet (outbound)</option>
            <option value="allowlist">Allow-list (listed destinations only)</option>
          </select>
        </label>
        {network === "allowlist" ? (
          <EgressRulesFields value={rules} onChange={setRules} idPrefix="create" />
        ) : null}
        <div className="field field-submit">
          <button type="submit" className="button button-primary" disabled={create.isPending}>
            {create.isPending ? (
              <>
                <span className="spinner" aria-hidden="true" /> Creating…
              </>
            ) : (
              "Create sandbox"
            )}
          </button>
        </div>
      </form>
      {create.isPending ? (
        <p className="muted" role="status">
          Starting the sandbox and waiting for its agent to say hello; this takes a moment.
        </p>
      ) : null}
      {create.error ? <ErrorNotice error={create.error} title="Could not create the sandbox" /> : null}
    </section>
  );
}
