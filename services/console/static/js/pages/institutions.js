// The region's institutions (GET /v1/institutions), searchable, ranked by risk index, each a
// link to its dossier.
import { get } from "../api.js";
import { h, table } from "../dom.js";
import { label, t } from "../i18n.js";
import { loadingNotice } from "./common.js";

export function rankingTable(institutions) {
  if (!institutions.length) return h("p", { class: "muted" }, t("none"));
  return table([t("name"), t("type"), t("region"), t("risk_index"), t("open_alerts"), t("screening")],
    institutions.map((i) => [
      h("a", { href: `#/institution/${encodeURIComponent(i.institution_id)}`, class: "dossier-link" }, `${i.name} (${i.institution_id})`),
      label("type", i.type), i.region,
      h("span", { class: `risk ${i.risk_index >= 60 ? "risk-high" : i.risk_index >= 30 ? "risk-mid" : "risk-low"}` }, Number(i.risk_index).toFixed(1)),
      i.open_alerts ? i.open_alerts.total : "", i.screening_hits || ""]), { class: "ranking" });
}

export async function render(view, route) {
  const q = route.params.get("q") || "";
  const search = h("input", { name: "q", type: "search", value: q, placeholder: t("search") });
  const form = h("form", { class: "filters" }, search, h("button", { type: "submit" }, t("search")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = search.value.trim();
    location.hash = value ? `#/institutions?${new URLSearchParams({ q: value })}` : "#/institutions";
  });
  const loading = loadingNotice();
  view.append(h("h1", null, t("institutions")), form, loading);
  const answer = await get("/v1/institutions", { q });
  const list = [...(answer.institutions || [])].sort((a, b) => b.risk_index - a.risk_index);
  loading.replaceWith(rankingTable(list));
}
