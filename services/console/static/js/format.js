// Figures as a desk reads them. Amounts stay decimal strings from the API; they are grouped by
// thousands for reading, never turned into floats for display.

export function money(value) {
  if (value === null || value === undefined || value === "") return "";
  const text = String(value);
  const match = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  if (!match) return text;
  return match[1] + match[2].replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (match[3] || "");
}

// times as Beijing time (the domain's calendar: days, reporting lines), whatever the browser's zone
const BEIJING_MS = 8 * 3600 * 1000;

function beijing(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : new Date(date.getTime() + BEIJING_MS).toISOString();
}

export function when(value) {
  if (!value) return "";
  const text = beijing(value);
  return text ? `${text.slice(0, 10)} ${text.slice(11, 16)}` : String(value);
}

// the Beijing day of a time ("2026-12-03"); a bare day is itself
export function day(value) {
  if (!value) return "";
  if (/^\d{4}-\d{2}-\d{2}$/.test(String(value))) return String(value);
  const text = beijing(value);
  return text ? text.slice(0, 10) : String(value);
}

export function percent(value) {
  if (value === null || value === undefined || value === "") return "";
  const n = Number(value);
  return Number.isFinite(n) ? `${(n * 100).toFixed(2)}%` : String(value);
}

// a metric's value for a table cell: plain values as they are, structures as compact JSON
export function plain(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

export function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}
