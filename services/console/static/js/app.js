// The console's frame: the header (navigation, language, sign-out) and the hash router. Each
// page is a module with render(view, route) that may return a function stopping what it started
// (polling). A page renders into a fresh box, so one left behind by a quick click draws nothing.
import { disposeCharts } from "./charts.js";
import { clear, h } from "./dom.js";
import { currentLang, setLang, t } from "./i18n.js";
import { caller, signOut, token } from "./session.js";
import { failureNotice } from "./pages/common.js";
import * as alertPage from "./pages/alert.js";
import * as dossier from "./pages/dossier.js";
import * as institutions from "./pages/institutions.js";
import * as overview from "./pages/overview.js";
import * as queue from "./pages/queue.js";
import * as replay from "./pages/replay.js";
import * as report from "./pages/report.js";
import * as signin from "./pages/signin.js";
import * as trace from "./pages/trace.js";

const ROUTES = { signin, overview, queue, alert: alertPage, institutions, institution: dossier, trace, report, replays: replay, replay };
const NAV = ["overview", "queue", "institutions", "trace", "report", "replays"];
let stop = null;

function parse() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const [name, ...rest] = path.split("/");
  return {
    name: ROUTES[name] ? name : "queue",
    arg: rest.length ? decodeURIComponent(rest.join("/")) : "",
    params: new URLSearchParams(query || ""),
  };
}

function drawHeader(active) {
  const signedIn = Boolean(token());
  const nav = clear(document.getElementById("nav"));
  if (signedIn) {
    for (const name of NAV) {
      const current = name === active || (name === "queue" && active === "alert") || (name === "institutions" && active === "institution")
        || (name === "replays" && active === "replay");
      nav.append(h("a", { href: `#/${name}`, "aria-current": current ? "page" : false }, t(`nav_${name}`)));
    }
  }
  const who = document.getElementById("who");
  const me = signedIn ? caller() : null;
  who.hidden = !me;
  who.textContent = !me ? "" : me.role === "desk" ? t("who_desk", { region: me.region }) : t("who_admin");
  document.getElementById("lang").textContent = t("switch");
  const out = document.getElementById("signout");
  out.textContent = t("signout");
  out.hidden = !signedIn;
  document.title = t("title");
}

async function route() {
  if (stop) stop();
  stop = null;
  disposeCharts();
  const where = parse();
  if (!token() && where.name !== "signin") {
    location.replace("#/signin");
    return;
  }
  drawHeader(where.name);
  const main = clear(document.getElementById("view"));
  const view = h("div", { class: `page page-${where.name}` });
  main.append(view);
  try {
    const stopper = await ROUTES[where.name].render(view, where);
    if (typeof stopper === "function") {
      if (view.isConnected) stop = stopper;
      else stopper();
    }
  } catch (error) {
    if (view.isConnected) view.append(failureNotice(error));
  }
}

document.getElementById("lang").addEventListener("click", () => {
  setLang(currentLang() === "zh" ? "en" : "zh");
  route();
});

document.getElementById("signout").addEventListener("click", () => {
  signOut();
  location.hash = "#/signin";
});

window.addEventListener("fundwatch:signed-out", () => {
  if (!location.hash.startsWith("#/signin")) location.hash = "#/signin";
});

window.addEventListener("hashchange", route);
setLang(currentLang());
route();
