// The regional overview (GET /v1/overview): counts by region level, typology, severity and
// status, the 30-day trend, and the institutions ranked by risk index, each linking to its dossier.
import { get } from "../api.js";
import { barOption, chart, lineOption } from "../charts.js";
import { h, section, table } from "../dom.js";
import { SEVERITIES, label, t } from "../i18n.js";
import { loadingNotice } from "./common.js";
import { rankingTable } from "./institutions.js";

function counts(kind, byKey) {
  const rows = Object.entries(byKey || {}).sort((a, b) => b[1] - a[1]);
  if (!rows.length) return h("p", { class: "muted" }, t("none"));
  return table([t(kind === "typology" ? "typology" : kind), t("count")], rows.map(([k, n]) => [label(kind, k), n]), { class: "counts" });
}

function levels(byRegion) {
  const blocks = ["province", "city", "county"].map((level) => {
    const rows = (byRegion[level] || []);
    return h("div", { class: "level" }, h("h3", null, label("level", level)),
      rows.length ? table([t("region"), t("institution_count"), t("alert_count"), t("open_alerts")],
        rows.map((r) => [r.region, r.institutions, r.alerts, r.open])) : h("p", { class: "muted" }, t("none")));
  });
  return h("div", { class: "grid3" }, blocks);
}

export async function render(view) {
  view.append(loadingNotice());
  const data = await get("/v1/overview");
  const trend = data.trend || [];
  const days = trend.map((d) => d.day.slice(5));
  view.replaceChildren(
    h("h1", null, t("overview"), data.region ? h("small", { class: "muted" }, ` ${t("region")} ${data.region}`) : null),
    h("div", { class: "stats" },
      h("div", { class: "stat" }, h("b", null, String(data.alerts)), h("span", null, t("alert_count"))),
      h("div", { class: "stat" }, h("b", null, String(data.open_alerts)), h("span", null, t("open_alerts")))),
    section(t("trend"), chart(lineOption(days, [
      [t("count"), trend.map((d) => d.alerts), { areaStyle: {} }],
      ...SEVERITIES.map((s) => [label("severity", s), trend.map((d) => (d.by_severity || {})[s] || 0)]),
    ]), "wide"),
    table([t("at"), t("count")], trend.filter((d) => d.alerts).map((d) => [d.day, d.alerts]), { class: "trend compact" })),
    section(t("by_level"), levels(data.by_region || {})),
    h("div", { class: "grid3" },
      section(t("by_typology"), counts("typology", data.by_typology),
        chart(barOption(Object.keys(data.by_typology || {}).map((k) => label("typology", k)), [[t("count"), Object.values(data.by_typology || {})]]), "small")),
      section(t("by_severity"), counts("severity", data.by_severity)),
      section(t("by_status"), counts("status", data.by_status))),
    section(t("ranking"), rankingTable(data.top_institutions || [])),
  );
}
