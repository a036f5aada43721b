// Look-through tracing (穿透, GET /v1/trace): from one account, hop by hop, where its money went.
// The form's values live in the URL's hash; the answer is drawn as a graph (accounts placed in
// columns by hop, edges labelled with amounts) and given as the same table.
import { get } from "../api.js";
import { chart } from "../charts.js";
import { h, section, table } from "../dom.js";
import { currentLang, label, t } from "../i18n.js";
import { isoDay, money, when } from "../format.js";
import { loadingNotice } from "./common.js";

function form(params) {
  const today = new Date();
  const field = (name, attrs) => h("label", null, t(name), h("input", { name, ...attrs }));
  const f = h("form", { class: "filters trace-form" },
    field("account", { value: params.get("account") || "", required: true, size: 24 }),
    field("since", { type: "date", value: params.get("since") || isoDay(new Date(today.getTime() - 90 * 86400000)) }),
    field("until", { type: "date", value: params.get("until") || "" }),
    field("hops", { type: "number", min: 1, max: 6, value: params.get("hops") || "3" }),
    h("button", { type: "submit", class: "primary" }, t("run_trace")));
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = new URLSearchParams();
    for (const name of ["account", "since", "until", "hops"]) {
      const value = f.elements[name].value.trim();
      if (value) chosen.set(name, value);
    }
    location.hash = `#/trace?${chosen}`;
  });
  return f;
}

// accounts in columns by hop, spread down each column; amounts on the edges while they stay
// readable (every amount is in the table below and in each edge's tooltip)
function graph(trace) {
  const byHop = new Map();
  for (const node of trace.nodes) {
    if (!byHop.has(node.hop)) byHop.set(node.hop, []);
    byHop.get(node.hop).push(node);
  }
  const tallest = Math.max(1, ...[...byHop.values()].map((list) => list.length));
  const nodes = [];
  for (const [hop, list] of byHop) {
    list.forEach((node, i) => nodes.push({
      name: node.account_id, x: hop * 320, y: (i - (list.length - 1) / 2) * 48,
      symbolSize: hop === 0 ? 24 : 14, category: node.monitored ? 0 : 1,
      label: { show: true, position: "right", fontSize: 11,
        formatter: node.role ? `${node.account_id} · ${label("role", node.role)}` : node.account_id },
    }));
  }
  const labelled = trace.edges.length <= 16;
  const links = trace.edges.map((e) => ({
    source: e.from, target: e.to, value: money(e.amount),
    label: { show: labelled, formatter: money(e.amount) }, lineStyle: { type: e.closes_cycle ? "dashed" : "solid" },
  }));
  return chart({
    legend: { top: 0, data: [t("monitored"), t("outside")] },
    series: [{
      type: "graph", layout: "none", roam: true, draggable: false, data: nodes, links,
      top: 40, bottom: 20, left: 40, right: 260,
      categories: [{ name: t("monitored") }, { name: t("outside") }],
      edgeSymbol: ["none", "arrow"], edgeSymbolSize: 8, lineStyle: { width: 1.5, curveness: 0.1, opacity: 0.6 },
      edgeLabel: { fontSize: 11 },
    }],
  }, "graph", Math.max(420, tallest * 34 + 80));
}

export async function render(view, route) {
  const account = route.params.get("account");
  view.append(h("h1", null, t("trace")), form(route.params));
  if (!account) return;
  const loading = loadingNotice();
  view.append(loading);
  const query = { account_id: account, hops: route.params.get("hops") || "3" };
  if (route.params.get("since")) query.since = route.params.get("since");
  if (route.params.get("until")) query.until = route.params.get("until");
  const trace = await get("/v1/trace", query);
  const rows = [...trace.edges].sort((a, b) => a.hop - b.hop || Number(b.amount) - Number(a.amount));
  loading.replaceWith(
    h("p", { class: "muted" }, `${trace.account_id} · ${trace.currency} · ${when(trace.since)} — ${when(trace.until)} · ${t("hops")} ${trace.hops}`),
    ...((currentLang() === "zh" && trace.notes_zh && trace.notes_zh.length ? trace.notes_zh : trace.notes) || [])
      .map((note) => h("p", { class: "notice" }, note)),
    rows.length ? section(t("edges"), graph(trace),
      table([t("hop"), t("payer"), t("payee"), t("amount"), t("count"), t("first_at"), t("last_at")],
        rows.map((e) => [e.hop, e.from, e.to + (e.closes_cycle ? " ↺" : ""), money(e.amount), e.count, when(e.first_at), when(e.last_at)]),
        { class: "trace-table" }),
      h("h3", null, t("nodes")),
      table([t("account"), t("hop"), t("role"), t("institution"), t("stops")],
        trace.nodes.map((n) => [n.account_id, n.hop, label("role", n.role), n.institution_id || "",
          [label("terminal", n.terminal), n.edges_left_out ? `${t("left_out")} ${n.edges_left_out} (${money(n.amount_left_out)})` : ""]
            .filter(Boolean).join(" · ")]), { class: "trace-nodes" }))
      : h("p", { class: "muted" }, t("trace_none")));
}
