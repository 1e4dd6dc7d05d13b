/** The status page's stylesheet: light and dark from the system setting, one column on a phone. */
export const PAGE_CSS = String.raw`:root {
  color-scheme: light dark;
  --bg: #f6f7f9; --fg: #16181d; --muted: #5b6270; --card: #ffffff; --line: #d9dde4;
  --accent: #1f5fbf; --accent-fg: #ffffff; --ok: #17703a; --bad: #b3261e; --warn: #8a5a00;
  --c1: #1f5fbf; --c2: #c2561a; --c3: #6b4fbb; --focus: #ffb000;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #111318; --fg: #e6e8ec; --muted: #9aa3b2; --card: #1a1d24; --line: #313644;
    --accent: #6ea2ff; --accent-fg: #0b0d12; --ok: #5cd08a; --bad: #ff8a80; --warn: #f0c060;
    --c1: #6ea2ff; --c2: #ff9a5c; --c3: #b59cff;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
.top { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); }
h1 { font-size: 1.15rem; margin: 0; }
h2 { font-size: 1.1rem; margin: 0; }
h3 { font-size: 1rem; margin: 1.25rem 0 .5rem; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 1rem; margin-bottom: 1rem; }
.login { max-width: 32rem; margin: 2rem auto; }
.login label { display: block; font-weight: 600; margin-bottom: .25rem; }
.row { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
input { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: .5rem .6rem; flex: 1 1 14rem; min-width: 0; }
button { font: inherit; cursor: pointer; border-radius: 6px; padding: .45rem .8rem; border: 1px solid var(--line); background: var(--card); color: var(--fg); }
button.primary { background: var(--accent); color: var(--accent-fg); border-color: var(--accent); font-weight: 600; }
button.quiet { background: transparent; }
button:disabled { opacity: .6; cursor: progress; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; }
.muted { color: var(--muted); }
.error { color: var(--bad); min-height: 1.2em; margin: .5rem 0 0; }
.db-head { display: flex; align-items: center; justify-content: space-between; gap: .75rem; flex-wrap: wrap; }
.badge { display: inline-block; padding: .1rem .55rem; border-radius: 999px; font-size: .85rem; font-weight: 600; border: 1px solid currentColor; }
.badge.ok { color: var(--ok); } .badge.failed { color: var(--bad); } .badge.skipped, .badge.none { color: var(--muted); } .badge.running { color: var(--accent); }
.facts { display: grid; grid-template-columns: minmax(9rem, max-content) 1fr; gap: .35rem 1rem; margin: .75rem 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.bad { color: var(--bad); } .ok { color: var(--ok); } .warn { color: var(--warn); }
progress { width: min(20rem, 100%); height: .9rem; vertical-align: middle; accent-color: var(--accent); }
.msg { margin-left: .25rem; }
figure { margin: 1rem 0 0; }
figcaption { color: var(--muted); font-size: .9rem; display: flex; gap: 1rem; flex-wrap: wrap; }
.key::before { content: ""; display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .35rem; vertical-align: -1px; }
.key.k1::before { background: var(--c1); } .key.k2::before { background: var(--c2); } .key.k3::before { background: var(--c3); }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { fill: var(--muted); font-size: 11px; }
svg.chart .axis { stroke: var(--line); }
svg.chart .s1 { stroke: var(--c1); fill: none; stroke-width: 2; } svg.chart .p1 { fill: var(--c1); }
svg.chart .s2 { stroke: var(--c2); fill: none; stroke-width: 2; } svg.chart .p2 { fill: var(--c2); }
svg.chart .p3 { fill: var(--c3); } svg.chart .p3.failed { fill: var(--bad); }
.charts { display: grid; grid-template-columns: 3fr 2fr; gap: 1rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { font-size: .85rem; color: var(--muted); font-weight: 600; }
td.num { text-align: right; white-space: nowrap; }
@media (max-width: 700px) {
  main { padding: .6rem; }
  .charts { grid-template-columns: 1fr; }
  .facts { grid-template-columns: 1fr; gap: .1rem; }
  .facts dd { margin-bottom: .4rem; }
  /* Rows as cards: no sideways scrolling on a phone. */
  thead { display: none; }
  table, tbody, tr, td { display: block; width: 100%; }
  tr { border: 1px solid var(--line); border-radius: 8px; margin-bottom: .6rem; padding: .35rem .5rem; }
  td { border: 0; padding: .15rem 0; text-align: left; }
  td.num { text-align: left; }
  /* The charts shrink to half their drawn width: keep their labels readable. */
  svg.chart text { font-size: 20px; }
  td[data-label]::before { content: attr(data-label) ": "; color: var(--muted); }
}
`;
