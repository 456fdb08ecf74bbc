import "diff2html/bundles/css/diff2html.min.css";
import { html as diffHtml } from "diff2html";
import { useMemo } from "react";

export type DiffLayout = "side-by-side" | "line-by-line";

/**
 * A unified diff drawn by diff2html. The diff came out of a sandbox; diff2html escapes every line
 * and file name it renders, so markup in it stays text.
 */
export function DiffView({ diff, layout, label }: { diff: string; layout: DiffLayout; label: string }) {
  const rendered = useMemo(
    () => (diff ? diffHtml(diff, { drawFileList: false, outputFormat: layout, matching: "none" }) : ""),
    [diff, layout],
  );
  if (!diff) return <p className="muted">No changes.</p>;
  return (
    <section
      className="diff-view"
      aria-label={label}
      data-layout={layout}
      // biome-ignore lint/security/noDangerouslySetInnerHtml: diff2html escapes the diff's text
      dangerouslySetInnerHTML={{ __html: rendered }}
    />
  );
}
