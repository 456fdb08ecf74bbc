import type { Plan, PlanLimits } from "@polydev/sdk";
import { useQuery } from "@tanstack/react-query";
import type { FormEvent } from "react";
import { useState } from "react";
import { adminPlansQuery, adminUsersQuery, useAssignPlan, useDeletePlan, usePutPlan } from "../queries/admin";
import { ConfirmButton } from "./confirm-button";
import { ErrorNotice } from "./error-notice";

/** The limits a plan can set, in the order the table and the form show them. */
const LIMITS: { key: keyof PlanLimits; label: string }[] = [
  { key: "runningSandboxes", label: "Running sandboxes" },
  { key: "cpu", label: "CPUs" },
  { key: "memoryMb", label: "Memory (MiB)" },
  { key: "diskMb", label: "Disk (MiB)" },
  { key: "runsPerHour", label: "Runs per hour" },
  { key: "tokensPerMonth", label: "Tokens per month" },
  { key: "costPerMonthUsd", label: "Cost per month (USD)" },
  { key: "requestsPerMinute", label: "Requests per minute" },
];

type LimitDrafts = Partial<Record<keyof PlanLimits, string>>;

/** Plans (named per-user limits) and who is on which: admins see, change and assign them here. */
export function PlansPanel() {
  const plans = useQuery(adminPlansQuery());
  const remove = useDeletePlan();
  const [editing, setEditing] = useState<Plan | undefined>(undefined);
  return (
    <section className="card" aria-labelledby="plans-title">
      <div className="card-head">
        <h2 id="plans-title">Plans</h2>
        <span className="muted">
          Per-user limits; the plan named <code>default</code> covers users on none. Empty means unlimited.
        </span>
      </div>
      {plans.error ? <ErrorNotice error={plans.error} title="Could not load plans" /> : null}
      {remove.error ? <ErrorNotice error={remove.error} title="Could not delete the plan" /> : null}
      {plans.data && plans.data.items.length === 0 ? (
        <p className="empty">No plans yet: every user is unlimited.</p>
      ) : null}
      {plans.data && plans.data.items.length > 0 ? (
        <div className="table-wrap">
          <table className="table table-compact" aria-label="Plans">
            <thead>
              <tr>
                <th scope="col">Plan</th>
                <th scope="col" className="num">
                  Users
                </th>
                {LIMITS.map((l) => (
                  <th scope="col" className="num" key={l.key}>
                    {l.label}
                  </th>
                ))}
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {plans.data.items.map((p) => (
                <tr key={p.name}>
                  <td>
                    <strong>{p.name}</strong>
                    {p.description ? <div className="small muted">{p.description}</div> : null}
                  </td>
                  <td className="num">{p.users}</td>
                  {LIMITS.map((l) => (
                    <td className="num" key={l.key}>
                      {p.limits[l.key] === undefined ? "—" : p.limits[l.key]?.toLocaleString()}
                    </td>
                  ))}
                  <td className="actions">
                    <button type="button" className="button button-small" onClick={() => setEditing(p)}>
                      Edit
                    </button>
                    <ConfirmButton
                      label="Delete"
                      title={`Delete the plan ${p.name}?`}
                      confirmLabel="Delete plan"
                      disabled={p.users > 0 || remove.isPending}
                      onConfirm={() => remove.mutate(p.name)}
                    >
                      Users on no plan fall back to the default plan.
                    </ConfirmButton>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      <PlanForm key={editing?.name ?? "new"} plan={editing} onDone={() => setEditing(undefined)} />
      <AssignPlan plans={plans.data?.items ?? []} />
    </section>
  );
}

function PlanForm({ plan, onDone }: { plan: Plan | undefined; onDone: () => void }) {
  const put = usePutPlan();
  const [name, setName] = useState(plan?.name ?? "");
  const [description, setDescription] = useState(plan?.description ?? "");
  const [limits, setLimits] = useState<LimitDrafts>(() =>
    Object.fromEntries(
      LIMITS.filter((l) => plan?.limits[l.key] !== undefined).map((l) => [
        l.key,
        String(plan?.limits[l.key]),
      ]),
    ),
  );
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    const parsed: PlanLimits = {};
    for (const { key } of LIMITS) {
      const text = limits[key]?.trim();
      if (text) parsed[key] = Number(text);
    }
    put.mutate(
      { name: name.trim(), description, limits: parsed },
      {
        onSuccess: () => {
          setName("");
          setDescription("");
          setLimits({});
          onDone();
        },
      },
    );
  };
  return (
    <form className="create-form" onSubmit={submit} aria-label={plan ? `Edit plan ${plan.name}` : "New plan"}>
      <label className="field">
        <span>Plan name</span>
        <input
          className="input"
          value={name}
          onChange={(e) => setName(e.target.value)}
          placeholder="team"
          required
          readOnly={plan !== undefined}
        />
      </label>
      <label className="field">
        <span>Description</span>
        <input className="input" value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      {LIMITS.map((l) => (
        <label className="field" key={l.key}>
          <span>{l.label}</span>
          <input
            className="input"
            type="number"
            min={0}
            step={l.key === "cpu" || l.key === "costPerMonthUsd" ? "any" : 1}
            value={limits[l.key] ?? ""}
            onChange={(e) => setLimits({ ...limits, [l.key]: e.target.value })}
            placeholder="unlimited"
          />
        </label>
      ))}
      <div className="field field-submit">
        <button type="submit" className="button button-primary" disabled={put.isPending}>
          {plan ? "Save plan" : "Create plan"}
        </button>
        {plan ? (
          <button type="button" className="button" onClick={onDone}>
            Cancel
          </button>
        ) : null}
      </div>
      {put.error ? <ErrorNotice error={put.error} title="Could not save the plan" /> : null}
    </form>
  );
}

function AssignPlan({ plans }: { plans: Plan[] }) {
  const users = useQuery(adminUsersQuery());
  const assign = useAssignPlan();
  const [userId, setUserId] = useState("");
  const [plan, setPlan] = useState("");
  const submit = (event: FormEvent): void => {
    event.preventDefault();
    if (userId) assign.mutate({ userId, plan: plan === "" ? null : plan });
  };
  return (
    <form className="create-form" onSubmit={submit} aria-label="Assign a plan">
      <label className="field">
        <span>User</span>
        <select
          className="input"
          aria-label="User to assign"
          value={userId}
          onChange={(e) => setUserId(e.target.value)}
          required
        >
          <option value="">Choose a user</option>
          {users.data?.items.map((u) => (
            <option key={u.id} value={u.id}>
              {u.name}
            </option>
          ))}
        </select>
      </label>
      <label className="field">
        <span>Plan</span>
        <select
          className="input"
          aria-label="Plan to assign"
          value={plan}
          onChange={(e) => setPlan(e.target.value)}
        >
          <option value="">The default plan</option>
          {plans.map((p) => (
            <option key={p.name} value={p.name}>
              {p.name}
            </option>
          ))}
        </select>
      </label>
      <div className="field field-submit">
        <button type="submit" className="button" disabled={assign.isPending || userId === ""}>
          Assign plan
        </button>
      </div>
      {assign.error ? <ErrorNotice error={assign.error} title="Could not assign the plan" /> : null}
      {assign.data ? (
        <p className="notice notice-good" role="status">
          Now on {assign.data.plan ?? "no plan (unlimited)"}: {assign.data.used.runningSandboxes} running
          sandboxes, {assign.data.used.runsPerHour} runs this hour.
        </p>
      ) : null}
    </form>
  );
}
