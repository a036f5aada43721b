// One alert: what it found (explanation in both languages, evidence records, metrics against
// thresholds), the daily flows of its first account around its window (a bar chart), the actions of the contract with a note,
// and the audit trail and history that GET /v1/alerts/{id} returns.
import { alertPath, get, post } from "../api.js";
import { chart } from "../charts.js";
import { facts, h, notice, section, table } from "../dom.js";
import { DISPOSITIONS, currentLang, label, t } from "../i18n.js";
import { day, money, plain, when } from "../format.js";
import { failureNotice, institutionLink, institutionNames, loadingNotice, severityClass } from "./common.js";

const CAN = {
  acknowledge: ["open"],
  assign: ["open", "acknowledged", "assigned"],
  dispose: ["open", "acknowledged", "assigned"],
  reopen: ["acknowledged", "assigned", "disposed"],
  comment: ["open", "acknowledged", "assigned", "disposed"],
};

function crossed(value, threshold) {
  const v = Number(value);
  const limit = Number(threshold);
  if (!Number.isFinite(v) || !Number.isFinite(limit) || value === "" || threshold === "") return "";
  return v >= limit ? "✔" : "";
}

function metricsTable(evidence) {
  const metrics = evidence.metrics || {};
  const thresholds = evidence.thresholds || {};
  const keys = [...new Set([...Object.keys(metrics), ...Object.keys(thresholds)])];
  if (!keys.length) return h("p", { class: "muted" }, t("none"));
  return table([t("metric"), t("value"), t("threshold"), t("crossed")],
    keys.map((k) => [k, plain(metrics[k]), plain(thresholds[k]), crossed(metrics[k], thresholds[k])]), { class: "metrics" });
}

async function flowsChart(alert) {
  const account = (alert.accounts || []).find((a) => a && !a.startsWith("*"));
  if (!account) return null;
  const since = new Date(new Date(alert.window_start).getTime() - 7 * 86400000);
  if (Number.isNaN(since.getTime())) return null;
  let flows;
  try {
    flows = await get(`/v1/accounts/${encodeURIComponent(account)}/flows`, { grain: "day", since: since.toISOString().replace(/\.\d+Z$/, "Z"), limit: "60" });
  } catch {
    return null;
  }
  const windows = (flows.windows || []).filter((w) => w.currency === "CNY").reverse();
  if (!windows.length) return null;
  return h("div", null, h("p", { class: "muted" }, `${t("account")} ${account} · CNY`),
    chart({
      grid: { left: 70, right: 20, top: 30, bottom: 30 },
      legend: { top: 0 },
      xAxis: { type: "category", data: windows.map((w) => day(w.window_start)) },
      yAxis: { type: "value" },
      series: [
        { name: t("inflow"), type: "bar", data: windows.map((w) => Number(w.inflow)) },
        { name: t("outflow"), type: "bar", data: windows.map((w) => Number(w.outflow)) },
      ],
    }, "small"));
}

function actionsPanel(alert, redraw) {
  const note = h("textarea", { name: "note", rows: 2, maxlength: 2000, placeholder: t("note") });
  const assignee = h("input", { name: "assignee", placeholder: t("assign_to"), value: alert.assignee || "" });
  const disposition = h("select", { name: "disposition" },
    DISPOSITIONS.map((d) => h("option", { value: d }, label("disposition", d))));
  const message = h("div", { class: "message", "aria-live": "polite" });

  async function act(action) {
    const body = { action };
    const text = note.value.trim();
    if (text) body.note = text;
    if (action === "assign") {
      if (!assignee.value.trim()) return assignee.focus();
      body.assignee = assignee.value.trim();
    }
    if (action === "dispose") body.disposition = disposition.value;
    if (action === "comment" && !text) return note.focus();
    try {
      const updated = await post(`${alertPath(alert.alert_id)}/actions`, body);
      redraw(updated, notice(t("action_done", { action: label("action", action) }), "ok"));
    } catch (error) {
      message.replaceChildren(failureNotice(error));
    }
  }

  const button = (action) => h("button", {
    type: "button", "data-action": action, disabled: !CAN[action].includes(alert.status), onclick: () => act(action),
  }, t(action));
  return section(t("actions"),
    h("div", { class: "actions" },
      button("acknowledge"),
      h("span", { class: "group" }, assignee, button("assign")),
      h("span", { class: "group" }, disposition, button("dispose")),
      button("reopen"), button("comment")),
    note, message);
}

function trail(actions) {
  if (!actions || !actions.length) return h("p", { class: "muted" }, t("no_actions"));
  return table([t("at"), t("actor"), t("action"), t("from_to"), t("disposition"), t("assignee"), t("note")],
    actions.map((a) => [when(a.at), `${a.actor.role} ${a.actor.token_id || ""}`.trim(), label("action", a.action),
      `${label("status", a.previous_status)} → ${label("status", a.new_status)}`,
      label("disposition", a.disposition), a.assignee || "", a.note || a.reason || ""]), { class: "audit" });
}

function history(entries) {
  if (!entries || !entries.length) return h("p", { class: "muted" }, t("none"));
  return table([t("at"), t("event"), t("status"), t("severity"), t("amount"), t("revision")],
    entries.map((e) => [when(e.at), label("action", e.event), label("status", e.status), label("severity", e.severity),
      money(e.amount), e.revision ?? ""]), { class: "history" });
}

async function draw(view, alert, names, message) {
  const zhFirst = currentLang() === "zh";
  const explanation = alert.explanation || {};
  const content = [
    h("p", null, h("a", { href: "#/queue" }, `← ${t("nav_queue")}`)),
    h("h1", null, h("span", { class: `badge ${severityClass(alert.severity)}` }, label("severity", alert.severity)), " ",
      label("typology", alert.typology), h("small", { class: "muted" }, ` ${alert.alert_id}`)),
    message || null,
    section(t("alert"), facts([
      [t("status"), label("status", alert.status) + (alert.suppressed ? ` · ${t("suppressed")}` : "")],
      [t("institution"), institutionLink(alert.institution_id, names)], [t("region"), alert.region],
      [t("amount"), money(alert.amount)], [t("score"), alert.score],
      [t("window"), `${when(alert.window_start)} — ${when(alert.window_end)}`],
      [t("accounts"), (alert.accounts || []).join(", ")], [t("disposition"), label("disposition", alert.disposition)],
      [t("assignee"), alert.assignee], [t("reason"), alert.reopened_reason],
      [t("detector"), alert.detector ? `${alert.detector.name} ${alert.detector.version}` : ""], [t("rule"), alert.rule],
      [t("revision"), alert.revision], [t("created"), when(alert.created_at)], [t("updated"), when(alert.updated_at)],
    ])),
    section(t("explanation"), h("p", { class: "explanation", lang: zhFirst ? "zh-CN" : "en" }, zhFirst ? explanation.zh : explanation.en),
      h("p", { class: "explanation muted", lang: zhFirst ? "en" : "zh-CN" }, zhFirst ? explanation.en : explanation.zh)),
    section(t("evidence"), h("h3", null, t("record_ids")),
      h("ul", { class: "records" }, (alert.evidence.record_ids || []).map((id) => h("li", null, h("code", null, id)))),
      h("h3", null, t("metrics")), metricsTable(alert.evidence)),
  ];
  const flows = section(t("flows_chart"), loadingNotice());
  content.push(flows, actionsPanel(alert, (updated, note) => redrawAll(view, updated, names, note)),
    section(t("audit"), trail(alert.actions)), section(t("history"), history(alert.history)));
  view.setAttribute("data-status", alert.status);
  view.replaceChildren(...content.filter(Boolean));
  const picture = await flowsChart(alert);
  if (picture) flows.querySelector(".loading").replaceWith(picture);
  else flows.remove();
}

function redrawAll(view, alert, names, message) {
  draw(view, alert, names, message).catch((error) => view.append(failureNotice(error)));
}

export async function render(view, route) {
  view.append(loadingNotice());
  const [alert, names] = await Promise.all([get(alertPath(route.arg)), institutionNames()]);
  await draw(view, alert, names, null);
}
