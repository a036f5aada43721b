// The token lives in sessionStorage (this tab, until it closes or signs out), never in a URL.
// The language is remembered across visits in localStorage.

const TOKEN = "fundwatch.token";
const CALLER = "fundwatch.caller";
const LANG = "fundwatch.lang";

export function token() {
  return sessionStorage.getItem(TOKEN) || "";
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(CALLER);
}

// Who the token is (GET /v1/me): its role and a desk's region, shown in the header.
export function caller() {
  try {
    return JSON.parse(sessionStorage.getItem(CALLER) || "null");
  } catch {
    return null;
  }
}

export function rememberCaller(value) {
  sessionStorage.setItem(CALLER, JSON.stringify({ role: value.role, region: value.region || "" }));
}

export function savedLang() {
  const lang = localStorage.getItem(LANG);
  return lang === "en" ? "en" : "zh";
}

export function saveLang(lang) {
  localStorage.setItem(LANG, lang);
}
