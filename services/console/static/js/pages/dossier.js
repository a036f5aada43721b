// 一户一档: one institution's dossier (GET /v1/institutions/{id}): profile, accounts by role,
// products (declared vs underlying yield), related parties, 90 days of money in and out,
// alerts with dispositions, registration-screening hits, and the risk index's components.
import { get } from "../api.js";
import { chart, lineOption } from "../charts.js";
import { facts, h, longTable, section, table } from "../dom.js";
import { currentLang, label, t } from "../i18n.js";
import { money, percent, when } from "../format.js";
import { loadingNotice, severityClass } from "./common.js";

// the institution's own accounts open, its investors' and borrowers' folded (there may be hundreds)
const FOLDED = new Set(["investor", "borrower"]);

function accounts(byRole) {
  const roles = Object.keys(byRole || {});
  if (!roles.length) return h("p", { class: "muted" }, t("none"));
  return roles.map((role) => h("details", { class: "role", open: !FOLDED.has(role) },
    h("summary", null, `${label("role", role)} (${byRole[role].length})`),
    longTable([t("account"), t("bank"), t("holder"), t("product")],
      byRole[role].map((a) => [
        h("a", { href: `#/trace?${new URLSearchParams({ account: a.account_id })}` }, a.account_id),
        a.bank_code, a.holder_name, a.product_id || ""]), 20, t("show_all", { n: byRole[role].length }))));
}

function products(list) {
  if (!list.length) return h("p", { class: "muted" }, t("none"));
  return table([t("product"), t("declared_yield"), t("underlying_rate"), "Δ", t("term"), t("underlying_term"), t("investor_cap")],
    list.map((p) => [`${p.name} (${p.product_id})`, percent(p.declared_annual_yield), percent(p.underlying_project_rate),
      h("span", { class: Number(p.yield_spread) > 0 ? "bad" : "" }, percent(p.yield_spread)),
      p.term_days, p.underlying_term_days ?? "", p.investor_cap ?? ""]), { class: "products" });
}

function flows(daily) {
  const cny = daily.filter((d) => d.currency === "CNY");
  if (!cny.length) return h("p", { class: "muted" }, t("none"));
  return chart(lineOption(cny.map((d) => d.day.slice(5)), [
    [t("inflow"), cny.map((d) => Number(d.inflow))],
    [t("outflow"), cny.map((d) => Number(d.outflow))],
  ]), "wide");
}

function alertRows(briefs) {
  return briefs.map((a) => h("tr", { "data-alert-id": a.alert_id },
    h("td", null, h("span", { class: `badge ${severityClass(a.severity)}` }, label("severity", a.severity))),
    h("td", null, h("a", { href: `#/alert/${encodeURIComponent(a.alert_id)}` }, label("typology", a.typology))),
    h("td", null, label("status", a.status)), h("td", null, label("disposition", a.disposition)),
    h("td", { class: "num" }, money(a.amount)), h("td", null, when(a.created_at))));
}

function alerts(all) {
  const headers = [t("severity"), t("typology"), t("status"), t("disposition"), t("amount"), t("created")];
  const open = alertRows(all.open || []);
  const past = alertRows(all.past || []);
  if (!open.length && !past.length) return h("p", { class: "muted" }, t("none"));
  return [
    h("h3", null, `${t("open_alerts")} (${open.length})`),
    open.length ? longTable(headers, open, 15, t("show_all", { n: open.length }), { class: "dossier-alerts" }) : null,
    h("h3", null, `${t("disposed_alerts")} (${past.length})`),
    past.length ? longTable(headers, past, 15, t("show_all", { n: past.length }), { class: "dossier-alerts" }) : null,
  ];
}

function risk(index) {
  const zh = currentLang() === "zh";
  return [
    h("p", { class: "big" }, `${t("risk_index")}: `, h("b", null, Number(index.value).toFixed(1)), " / 100",
      h("small", { class: "muted" }, ` v${index.version} · ${when(index.as_of)}`)),
    table([t("component"), t("weight"), t("value"), t("points"), t("explanation")],
      index.components.map((c) => [zh ? c.label_zh : c.label_en, c.weight, Number(c.value).toFixed(2), Number(c.points).toFixed(1), c.explanation]),
      { class: "components" }),
  ];
}

export async function render(view, route) {
  view.append(loadingNotice());
  const d = await get(`/v1/institutions/${encodeURIComponent(route.arg)}`);
  const p = d.profile;
  view.replaceChildren(
    h("h1", null, `${t("dossier")} · ${p.name}`, h("small", { class: "muted" }, ` ${p.institution_id}`)),
    h("div", { class: "grid2" },
      section(t("profile"), facts([
        [t("uscc"), p.uscc], [t("type"), label("type", p.type)], [t("region"), p.region],
        [t("state"), p.status], [t("licences"), (p.licences || []).join(", ")], [t("scope"), p.business_scope],
      ])),
      section(t("risk_components"), risk(d.risk_index))),
    section(t("daily_flows"), flows(d.daily_flows || [])),
    section(t("alerts_of"), alerts(d.alerts || {})),
    section(t("accounts_by_role"), accounts(d.accounts_by_role)),
    section(t("products"), products(d.products || [])),
    section(t("related_parties"), (d.related_parties || []).length
      ? table([t("name"), t("relation"), t("accounts")], d.related_parties.map((r) => [r.name, label("relation", r.relation), r.accounts.join(", ")]))
      : h("p", { class: "muted" }, t("none"))),
    section(t("screening"), d.screening.hits.length
      ? table([t("keyword"), t("field")], d.screening.hits.map((hit) => [hit.keyword, hit.field === "name" ? t("name") : t("scope")]))
      : h("p", { class: "muted" }, t("none"))),
  );
}
