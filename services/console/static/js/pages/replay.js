// Saved replays (GET /v1/replays, GET /v1/replays/{id}): the detectors run again over stored
// records under the live thresholds and model (the baseline) and a candidate, saved by
// `fundwatch replay --save`. The list says what each run judged with and what moved; one replay
// shows the alerts gained, lost and regraded per typology, institution and region, then the alerts.
// A desk's figures are its region's alone (the API sums them from its rows).
import { get } from "../api.js";
import { facts, h, longTable, notice, section, table } from "../dom.js";
import { label, t } from "../i18n.js";
import { money, when } from "../format.js";
import { institutionLink, institutionNames, loadingNotice, severityClass } from "./common.js";

const SHOWN = 50; // alerts of a list shown before "show all"

function model(m) {
  return m ? `${m.artefact_id} (${m.digest.slice(0, 12)})` : t("no_model");
}

function side(s) {
  return `${s.thresholds}${s.thresholds_file ? ` · ${s.thresholds_file}` : ""} · ${model(s.model)}`;
}

function moved(n, sign) {
  return h("span", { class: n ? `moved ${sign === "+" ? "up" : "down"}` : "muted" }, n ? `${sign}${n}` : "0");
}

function listTable(replays) {
  if (!replays.length) return h("p", { class: "muted" }, t("replays_none"));
  const rows = replays.map((r) => h("tr", { "data-replay-id": r.replay_id },
    h("td", null, h("a", { href: `#/replay/${encodeURIComponent(r.replay_id)}`, class: "replay-link" }, when(r.saved_at))),
    h("td", null, `${when(r.since)} — ${when(r.until)}`),
    h("td", null, side(r.baseline)), h("td", null, side(r.candidate)),
    h("td", { class: "num" }, r.totals.baseline_alerts), h("td", { class: "num" }, r.totals.candidate_alerts),
    h("td", { class: "num" }, moved(r.totals.gained, "+")), h("td", { class: "num" }, moved(r.totals.lost, "−")),
    h("td", { class: "num" }, r.totals.regraded)));
  return table([t("saved_at"), t("period"), t("baseline"), t("candidate"), t("baseline_alerts"), t("candidate_alerts"),
    t("gained"), t("lost"), t("regraded")], rows, { class: "replays" });
}

function groupName(kind, name, names) {
  if (name === "(none)") return t("none");
  if (kind === "typology") return label("typology", name);
  if (kind === "institution") return institutionLink(name, names);
  return name;
}

function groupTable(kind, groups, names) {
  if (!groups.length) return h("p", { class: "muted" }, t("none"));
  const rows = groups.map((g) => h("tr", { "data-group": g.name },
    h("td", null, groupName(kind, g.name, names)), h("td", { class: "num" }, g.baseline), h("td", { class: "num" }, g.candidate),
    h("td", { class: "num" }, moved(g.gained, "+")), h("td", { class: "num" }, moved(g.lost, "−")), h("td", { class: "num" }, g.regraded)));
  return table([t(kind === "typology" ? "typology" : kind), t("baseline"), t("candidate"), t("gained"), t("lost"), t("regraded")],
    rows, { class: "replay-groups", "data-by": kind });
}

function alertTable(kind, alerts, names) {
  if (!alerts.length) return h("p", { class: "muted" }, t("none"));
  const regraded = kind === "regraded";
  const rows = alerts.map((a) => h("tr", { "data-key": a.alert_id, class: severityClass(a.severity) },
    h("td", null, h("code", null, a.alert_id)), h("td", null, label("typology", a.typology)),
    h("td", null, a.institution_id ? institutionLink(a.institution_id, names) : t("none")), h("td", null, a.region || t("none")),
    regraded ? h("td", null, label("severity", a.baseline_severity)) : null,
    h("td", null, h("span", { class: `badge ${severityClass(a.severity)}` }, label("severity", a.severity))),
    h("td", { class: "num" }, money(a.amount)), h("td", null, `${when(a.window_start)} — ${when(a.window_end)}`)));
  const headers = [t("alert_id"), t("typology"), t("institution"), t("region"), ...(regraded ? [t("from_severity")] : []),
    t("severity"), t("amount"), t("window")];
  return longTable(headers, rows, SHOWN, t("show_all", { n: alerts.length }), { class: "replay-alerts", "data-kind": kind });
}

async function renderList(view) {
  const loading = loadingNotice();
  view.append(h("h1", null, t("replays")), h("p", { class: "muted" }, t("replays_hint")), loading);
  const answer = await get("/v1/replays");
  loading.replaceWith(listTable(answer.replays || []));
}

async function renderOne(view, id) {
  const loading = loadingNotice();
  view.append(h("p", null, h("a", { href: "#/replays" }, `← ${t("replays")}`)), h("h1", null, t("replay")), loading);
  const [r, names] = await Promise.all([get(`/v1/replays/${encodeURIComponent(id)}`), institutionNames()]);
  const s = r.replay;
  loading.replaceWith(h("div", { class: "replay", "data-replay-id": s.replay_id },
    facts([
      [t("period"), `${when(s.since)} — ${when(s.until)}`], [t("saved_at"), when(s.saved_at)],
      [t("baseline"), side(s.baseline)], [t("candidate"), side(s.candidate)],
      [t("region"), r.region || t("all")], [t("records"), s.records === null ? "" : money(String(s.records))],
    ]),
    h("div", { class: "stats" }, [
      [s.totals.baseline_alerts, t("baseline_alerts")], [s.totals.candidate_alerts, t("candidate_alerts")],
      [s.totals.gained ? `+${s.totals.gained}` : "0", t("gained")], [s.totals.lost ? `−${s.totals.lost}` : "0", t("lost")],
      [s.totals.regraded, t("regraded")],
    ].map(([n, what]) => h("div", { class: "stat" }, h("b", null, String(n)), h("span", null, what)))),
    r.truncated ? notice(t("truncated_lists"), "unavailable") : null,
    section(t("by_typology"), groupTable("typology", r.by_typology, names)),
    h("div", { class: "grid2" },
      section(t("by_institution"), groupTable("institution", r.by_institution, names)),
      section(t("by_region"), groupTable("region", r.by_region, names))),
    section(`${t("gained_alerts")} (${r.gained.length})`, alertTable("gained", r.gained, names)),
    section(`${t("lost_alerts")} (${r.lost.length})`, alertTable("lost", r.lost, names)),
    section(`${t("regraded_alerts")} (${r.regraded.length})`, alertTable("regraded", r.regraded, names))));
}

export async function render(view, route) {
  if (route.name === "replay" && route.arg) return renderOne(view, route.arg);
  return renderList(view);
}
