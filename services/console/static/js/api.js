// Calls to FundWatch's API on this origin, with the bearer token in a header. A 401 signs out and
// sends the page back to sign-in; any other error is thrown with the contract's code and message.
import { signOut, token } from "./session.js";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

function request(path, method, body) {
  const headers = { Authorization: `Bearer ${token()}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    redirect: "error",
  });
}

async function failure(response) {
  let error = {};
  try {
    error = (await response.json()).error || {};
  } catch {
    // not the contract's error shape: the status says enough
  }
  if (response.status === 401) {
    signOut();
    window.dispatchEvent(new CustomEvent("fundwatch:signed-out"));
  }
  return new ApiError(response.status, error.code, error.message);
}

export async function get(path, params) {
  const query = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString() : "";
  const response = await request(query ? `${path}?${query}` : path, "GET");
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function post(path, body) {
  const response = await request(path, "POST", body);
  if (!response.ok) throw await failure(response);
  return response.json();
}

// a file the API answers (the report's workbook): fetched with the token, saved through a blob URL
export async function download(path, filename) {
  const response = await request(path, "GET");
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export function alertPath(id) {
  return `/v1/alerts/${encodeURIComponent(id)}`;
}
