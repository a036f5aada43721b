// What several pages share: how a failure reads, and the institution names behind ids.
import { ApiError, get } from "../api.js";
import { h, notice } from "../dom.js";
import { t } from "../i18n.js";

// an API path this server does not have: aiohttp's own 404 for an unmatched route
export function missingEndpoint(error) {
  return error instanceof ApiError && error.status === 404 && error.message === "Not Found";
}

export function failureNotice(error) {
  if (missingEndpoint(error)) return notice(t("not_available"), "unavailable");
  const code = error instanceof ApiError && error.code ? ` (${error.code})` : "";
  return notice(`${t("error")}${error.message}${code}`, "error");
}

export function loadingNotice() {
  return h("p", { class: "muted loading" }, t("loading"));
}

let names = null;

// institution id -> name, from GET /v1/institutions, asked once per page load; empty without it
export function institutionNames() {
  if (!names) {
    names = get("/v1/institutions")
      .then((answer) => new Map((answer.institutions || []).map((i) => [i.institution_id, i.name])))
      .catch(() => new Map());
  }
  return names;
}

export function institutionLink(id, nameMap) {
  if (!id) return "";
  const name = nameMap && nameMap.get(id);
  return h("a", { href: `#/institution/${encodeURIComponent(id)}` }, name ? `${name} (${id})` : id);
}

// the severity as a coloured badge; the class comes from a fixed list, never from data
const KNOWN = new Set(["low", "medium", "high", "critical"]);
export function severityClass(severity) {
  return `sev-${KNOWN.has(severity) ? severity : "unknown"}`;
}
