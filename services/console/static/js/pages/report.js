// The risk assessment for the leading group (GET /v1/reports/risk): a region and a month, shown
// as a printable page (the print stylesheet leaves out the console around it) and exported as an
// XLSX workbook, fetched with the bearer token and saved from a blob (the token is never in a URL).
import { download, get } from "../api.js";
import { h, notice, section, table } from "../dom.js";
import { currentLang, t } from "../i18n.js";
import { when } from "../format.js";
import { failureNotice, loadingNotice } from "./common.js";
import { rankingTable } from "./institutions.js";

function monthRange(month) {
  const [year, m] = month.split("-").map(Number);
  const next = m === 12 ? `${year + 1}-01` : `${year}-${String(m + 1).padStart(2, "0")}`;
  return { from: `${month}-01`, to: `${next}-01` };
}

function rows(list) {
  const zh = currentLang() === "zh";
  return table([t("name"), t("alert_count"), t("open_alerts"), t("disposed_count"), `${t("inst_with_alerts")} / ${t("institution_count")}`],
    list.map((r) => [zh ? r.label_zh : r.label_en, r.alerts, r.open, r.disposed,
      r.institutions === null ? r.institutions_with_alerts : `${r.institutions_with_alerts} / ${r.institutions}`]), { class: "report-table" });
}

export async function render(view, route) {
  const now = new Date();
  const month = route.params.get("month") || `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}`;
  const region = route.params.get("region") || "";
  const f = h("form", { class: "filters no-print" },
    h("label", null, t("region"), h("input", { name: "region", value: region, size: 8, pattern: "[0-9]{1,6}" })),
    h("label", null, t("month"), h("input", { name: "month", type: "month", value: month, required: true })),
    h("button", { type: "submit" }, t("make_report")));
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams({ month: f.elements.month.value });
    if (f.elements.region.value.trim()) chosen.set("region", f.elements.region.value.trim());
    location.hash = `#/report?${chosen}`;
  });
  const query = { ...monthRange(month), ...(region ? { region } : {}) };
  const message = h("div", { class: "message no-print", "aria-live": "polite" });
  const filename = `fundwatch-risk-${region || "all"}-${month}.xlsx`;
  const exportButton = h("button", { type: "button", id: "export-xlsx", onclick: async () => {
    try {
      await download(`/v1/reports/risk?${new URLSearchParams({ ...query, format: "xlsx" })}`, filename);
      message.replaceChildren(notice(t("downloaded", { file: filename }), "ok"));
    } catch (error) {
      message.replaceChildren(failureNotice(error));
    }
  } }, t("export_xlsx"));
  const tools = h("div", { class: "toolbar no-print" },
    h("button", { type: "button", id: "print", onclick: () => window.print() }, t("print")), exportButton);
  const loading = loadingNotice();
  view.append(h("h1", { class: "no-print" }, t("report")), f, tools, message, loading);
  const r = await get("/v1/reports/risk", { ...query, format: "json" });
  const zh = currentLang() === "zh";
  const s = r.summary;
  loading.replaceWith(h("article", { class: "report" },
    h("h1", null, zh ? r.title_zh : r.title_en),
    h("p", { class: "muted" }, `${t("region")} ${r.region || t("all")} · ${t("period")} ${when(r.from)} — ${when(r.to)} · ${when(r.generated_at)}`),
    h("div", { class: "stats" }, [
      [s.institutions, t("institution_count")], [s.institutions_with_alerts, t("inst_with_alerts")], [s.alerts, t("alert_count")],
      [s.open, t("open_alerts")], [s.disposed, t("disposed_count")], [s.high_or_critical, t("high_or_critical")],
    ].map(([n, what]) => h("div", { class: "stat" }, h("b", null, String(n)), h("span", null, what)))),
    section(t("by_type"), rows(r.by_institution_type)),
    section(t("by_region"), rows(r.by_region)),
    section(t("by_typology"), rows(r.by_typology)),
    section(t("by_disposition"), rows(r.by_disposition)),
    section(t("ranking"), rankingTable(r.top_institutions || [])),
    h("p", { class: "muted small" }, `${t("risk_index")} v${r.risk_index_version}`)));
}
