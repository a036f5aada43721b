// The token lives in sessionStorage (this tab, until it closes or signs out), never in a URL.
// The language is remembered across visits in localStorage.

const TOKEN = "fundwatch.token";
const LANG = "fundwatch.lang";

export function token() {
  return sessionStorage.getItem(TOKEN) || "";
}

export function signIn(value) {
  sessionStorage.setItem(TOKEN, value);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN);
}

export function savedLang() {
  const lang = localStorage.getItem(LANG);
  return lang === "en" ? "en" : "zh";
}

export function saveLang(lang) {
  localStorage.setItem(LANG, lang);
}
