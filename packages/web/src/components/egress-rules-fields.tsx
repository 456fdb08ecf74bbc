import { useQuery } from "@tanstack/react-query";
import { networkPresetsQuery } from "../queries/network";

/** The allow/deny lists and presets as a form edits them: entries as typed, one per line. */
export interface EgressRulesDraft {
  allow: string;
  deny: string;
  presets: string[];
}

export const EMPTY_RULES: EgressRulesDraft = { allow: "", deny: "", presets: [] };

/** Entries are separated by lines, spaces or commas; none of them can appear inside an entry. */
export function parseEntries(text: string): string[] {
  return text.split(/[\s,]+/).filter((entry) => entry !== "");
}

export function draftFromPolicy(policy: {
  allow: string[];
  deny: string[];
  presets: string[];
}): EgressRulesDraft {
  return { allow: policy.allow.join("\n"), deny: policy.deny.join("\n"), presets: [...policy.presets] };
}

/** Allow and deny entries and the preset checkboxes, shared by the create form and the Network tab. */
export function EgressRulesFields({
  value,
  onChange,
  idPrefix,
}: {
  value: EgressRulesDraft;
  onChange: (next: EgressRulesDraft) => void;
  idPrefix: string;
}) {
  const presets = useQuery(networkPresetsQuery());
  const names = [...(presets.data?.presets ?? []).map((p) => p.name)];
  // A preset the policy names but the list does not (yet) show stays visible and removable.
  for (const name of value.presets) if (!names.includes(name)) names.push(name);
  const descriptions = new Map((presets.data?.presets ?? []).map((p) => [p.name, p.description]));
  const togglePreset = (name: string, on: boolean): void =>
    onChange({
      ...value,
      presets: on
        ? [...value.presets.filter((p) => p !== name), name]
        : value.presets.filter((p) => p !== name),
    });
  return (
    <div className="rules-fields">
      <label className="field">
        <span>Allowed destinations</span>
        <textarea
          className="input mono"
          rows={4}
          value={value.allow}
          onChange={(e) => onChange({ ...value, allow: e.target.value })}
          placeholder={"registry.npmjs.org\n*.github.com\n10.20.0.0/16"}
          aria-describedby={`${idPrefix}-rules-hint`}
        />
      </label>
      <label className="field">
        <span>Denied destinations</span>
        <textarea
          className="input mono"
          rows={4}
          value={value.deny}
          onChange={(e) => onChange({ ...value, deny: e.target.value })}
          placeholder="uploads.github.com"
          aria-describedby={`${idPrefix}-rules-hint`}
        />
      </label>
      <fieldset className="fieldset">
        <legend>Presets</legend>
        {presets.error ? <p className="small bad">Could not load the presets.</p> : null}
        {names.length === 0 && !presets.isPending ? <p className="small muted">No presets defined.</p> : null}
        <div className="checks checks-column">
          {names.map((name) => (
            <label key={name} className="check" title={descriptions.get(name) ?? ""}>
              <input
                type="checkbox"
                name="preset"
                value={name}
                checked={value.presets.includes(name)}
                onChange={(e) => togglePreset(name, e.target.checked)}
              />
              {name}
            </label>
          ))}
        </div>
      </fieldset>
      <p id={`${idPrefix}-rules-hint`} className="small muted rules-hint">
        One entry per line: a name (<code>registry.example.com</code>), a wildcard for the names below a
        domain (<code>*.example.com</code>), an IP address or a CIDR (<code>10.20.0.0/16</code>). Denied
        entries win over allowed ones; private and loopback addresses are refused unless a CIDR lists them.
      </p>
    </div>
  );
}
