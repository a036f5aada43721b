// ECharts, served by FundWatch from /console/vendor/ when `make setup` installed it. The page's
// <html data-charts="on|off"> says whether it is there, so a missing file is never asked for and
// the pages show their tables alone. Tooltips render inside the canvas (richText), never as HTML.
import { h } from "./dom.js";
import { t } from "./i18n.js";

let loading = null;
const live = new Set();

function load() {
  if (document.documentElement.dataset.charts !== "on") return Promise.resolve(null);
  if (!loading) {
    loading = new Promise((resolve) => {
      const script = document.createElement("script");
      script.src = "/console/vendor/echarts.min.js";
      script.onload = () => resolve(window.echarts || null);
      script.onerror = () => resolve(null);
      document.head.append(script);
    });
  }
  return loading;
}

// resolves true once the box is in the page (a page appends it after building it), false if
// it never is (the page was left)
function connected(box, tries = 100) {
  return new Promise((resolve) => {
    const check = (left) => {
      if (box.isConnected) resolve(true);
      else if (left <= 0) resolve(false);
      else setTimeout(() => check(left - 1), 20);
    };
    check(tries);
  });
}

// a chart box to append now, drawn when ECharts has loaded; without ECharts, a short note
export function chart(option, cls, height) {
  const box = h("div", { class: `chart ${cls || ""}`, role: "img" });
  if (height) box.style.height = `${height}px`; // CSSOM, which the policy allows (no style attribute)
  load().then(async (echarts) => {
    if (!(await connected(box))) return;
    if (!echarts) {
      box.replaceWith(h("p", { class: "muted" }, t("no_chart")));
      return;
    }
    for (const old of live) {
      if (!old.getDom().isConnected) {
        old.dispose();
        live.delete(old);
      }
    }
    const instance = echarts.init(box, null, { renderer: "canvas" });
    instance.setOption({ animation: false, tooltip: { renderMode: "richText" }, ...option });
    live.add(instance);
  });
  return box;
}

export function disposeCharts() {
  for (const instance of live) instance.dispose();
  live.clear();
}

window.addEventListener("resize", () => {
  for (const instance of live) instance.resize();
});

export function lineOption(days, series) {
  return {
    grid: { left: 60, right: 20, top: 30, bottom: 30 },
    legend: { top: 0 },
    tooltip: { renderMode: "richText", trigger: "axis" },
    xAxis: { type: "category", data: days },
    yAxis: { type: "value" },
    series: series.map(([name, data, extra]) => ({ name, type: "line", data, showSymbol: false, ...(extra || {}) })),
  };
}

export function barOption(categories, series) {
  return {
    grid: { left: 60, right: 20, top: 30, bottom: 60, containLabel: true },
    legend: { top: 0 },
    tooltip: { renderMode: "richText", trigger: "axis" },
    xAxis: { type: "category", data: categories, axisLabel: { interval: 0, rotate: categories.length > 6 ? 30 : 0 } },
    yAxis: { type: "value" },
    series: series.map(([name, data]) => ({ name, type: "bar", data })),
  };
}
