// The alert queue: filters (kept in the URL's hash), severity colours, live updates by polling
// GET /v1/alerts every few seconds, checkboxes for bulk acknowledge and assign, and "next
// unassigned" (the oldest open alert nobody has taken). Each row carries data-alert-id.
import { alertPath, get, post } from "../api.js";
import { clear, h, notice } from "../dom.js";
import { SEVERITIES, STATUSES, TYPOLOGIES, label, t } from "../i18n.js";
import { money, when } from "../format.js";
import { failureNotice, institutionLink, institutionNames, severityClass } from "./common.js";

const POLL_MS = 4000;
const FILTERS = ["typology", "severity", "status", "institution_id"];

function select(name, values, kind, chosen) {
  return h("select", { name, "aria-label": t(name) },
    h("option", { value: "" }, `${t(name)}: ${t("all")}`),
    values.map((v) => h("option", { value: v, selected: v === chosen }, label(kind, v))));
}

function filterForm(params) {
  const institution = h("input", { name: "institution_id", placeholder: t("institution_id"), value: params.get("institution_id") || "" });
  const form = h("form", { class: "filters" },
    select("typology", TYPOLOGIES, "typology", params.get("typology")),
    select("severity", SEVERITIES, "severity", params.get("severity")),
    select("status", STATUSES, "status", params.get("status")),
    institution,
    h("button", { type: "submit" }, t("apply")),
    h("button", { type: "button", onclick: () => { location.hash = "#/queue"; } }, t("reset")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) chosen.set(name, value);
    }
    location.hash = `#/queue?${chosen}`;
  });
  return form;
}

export async function render(view, route) {
  const query = { limit: "500" };
  for (const name of FILTERS) if (route.params.get(name)) query[name] = route.params.get(name);
  const selected = new Set();
  const seen = new Set();
  let first = true;
  const names = await institutionNames();

  const message = h("div", { class: "message", "aria-live": "polite" });
  const stamp = h("span", { class: "live" });
  const tbody = h("tbody");
  const all = h("input", { type: "checkbox", "aria-label": t("select_all") });
  const assignee = h("input", { name: "assignee", placeholder: t("assign_to"), size: 14 });
  const count = h("span", { class: "muted" });

  function updateCount() {
    count.textContent = `${selected.size} ${t("selected")}`;
  }

  function row(alert) {
    const id = alert.alert_id;
    const box = h("input", { type: "checkbox", class: "pick", "aria-label": id });
    box.checked = selected.has(id);
    box.addEventListener("change", () => {
      if (box.checked) selected.add(id);
      else selected.delete(id);
      updateCount();
    });
    const fresh = !first && !seen.has(id);
    seen.add(id);
    return h("tr", { "data-alert-id": id, class: `${severityClass(alert.severity)}${fresh ? " fresh" : ""}` },
      h("td", null, box),
      h("td", null, h("span", { class: `badge ${severityClass(alert.severity)}` }, label("severity", alert.severity))),
      h("td", null, h("a", { href: `#/alert/${encodeURIComponent(id)}`, class: "open-alert" }, label("typology", alert.typology))),
      h("td", null, institutionLink(alert.institution_id, names)),
      h("td", null, alert.region),
      h("td", { class: "num" }, money(alert.amount)),
      h("td", null, label("status", alert.status), alert.suppressed ? h("span", { class: "tag" }, t("suppressed")) : null),
      h("td", null, alert.assignee || ""),
      h("td", null, when(alert.updated_at)));
  }

  async function refresh() {
    try {
      const answer = await get("/v1/alerts", query);
      const alerts = answer.alerts || [];
      const ids = new Set(alerts.map((a) => a.alert_id));
      for (const id of [...selected]) if (!ids.has(id)) selected.delete(id);
      clear(tbody).append(...alerts.map(row));
      if (!alerts.length) tbody.append(h("tr", null, h("td", { colspan: 9, class: "muted" }, t("alerts_none"))));
      first = false;
      updateCount();
      stamp.textContent = `● ${t("live")} · ${t("updated_at")} ${when(new Date().toISOString())}`;
      stamp.classList.remove("stale");
    } catch (error) {
      stamp.classList.add("stale");
      message.replaceChildren(failureNotice(error));
    }
  }

  async function bulk(body) {
    const ids = [...selected];
    if (!ids.length) return;
    let ok = 0;
    const failed = [];
    for (const id of ids) {
      try {
        await post(`${alertPath(id)}/actions`, body);
        ok += 1;
      } catch (error) {
        failed.push(`${id}: ${error.message}`);
      }
    }
    selected.clear();
    all.checked = false;
    message.replaceChildren(notice(t("bulk_done", { ok, failed: failed.length }), failed.length ? "error" : "ok"),
      ...failed.map((line) => h("p", { class: "muted small" }, line)));
    await refresh();
  }

  async function nextUnassigned() {
    try {
      const answer = await get("/v1/alerts", { status: "open", limit: "1000" });
      const waiting = (answer.alerts || []).filter((a) => !a.assignee)
        .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
      if (waiting.length) location.hash = `#/alert/${encodeURIComponent(waiting[0].alert_id)}`;
      else message.replaceChildren(notice(t("no_unassigned")));
    } catch (error) {
      message.replaceChildren(failureNotice(error));
    }
  }

  all.addEventListener("change", () => {
    for (const box of tbody.querySelectorAll("input.pick")) {
      box.checked = all.checked;
      const id = box.closest("tr").dataset.alertId;
      if (all.checked) selected.add(id);
      else selected.delete(id);
    }
    updateCount();
  });

  const toolbar = h("div", { class: "toolbar" },
    h("button", { type: "button", id: "bulk-ack", onclick: () => bulk({ action: "acknowledge" }) }, t("bulk_ack")),
    assignee,
    h("button", { type: "button", id: "bulk-assign", onclick: () => {
      const who = assignee.value.trim();
      if (who) bulk({ action: "assign", assignee: who });
      else assignee.focus();
    } }, t("bulk_assign")),
    count,
    h("span", { class: "spacer" }),
    h("button", { type: "button", id: "next-unassigned", class: "primary", onclick: nextUnassigned }, t("next_unassigned")),
    stamp);

  view.append(h("h1", null, t("nav_queue")), filterForm(route.params), toolbar, message,
    h("table", { class: "queue" },
      h("thead", null, h("tr", null, h("th", null, all),
        [t("severity"), t("typology"), t("institution"), t("region"), t("amount"), t("status"), t("assignee"), t("updated")]
          .map((name) => h("th", { scope: "col" }, name)))),
      tbody));
  updateCount();
  await refresh();
  const timer = setInterval(() => {
    if (!document.hidden) refresh();
  }, POLL_MS);
  return () => clearInterval(timer);
}
