// Talks to the REST API; adds the API token when the server asks for one.

const BASE = "/jobqueue/api/v1.0";
const TOKEN_KEY = "jobqueue.token";
let access = "full";  // what the server says this browser's token may do: "full" or "read"

export function canChange() {
  return access !== "read";
}

export function token() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function forgetToken() {
  localStorage.removeItem(TOKEN_KEY);
}

export function askForToken(refused = false) {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token");
  const error = document.getElementById("token-error");
  return new Promise((resolve) => {
    if (dialog.open) { dialog.addEventListener("close", () => resolve(token()), { once: true }); return; }
    error.hidden = !refused;
    input.setAttribute("aria-invalid", String(refused));
    input.value = "";
    dialog.addEventListener("close", () => {
      if (input.value) localStorage.setItem(TOKEN_KEY, input.value.trim());
      resolve(token());
    }, { once: true });
    dialog.showModal();
  });
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  if (token()) h.Authorization = `Bearer ${token()}`;
  return h;
}

// Returns {status, body}; network failures become status 0 with an error body.
export async function api(method, path, payload) {
  const init = { method, headers: headers(payload ? { "Content-Type": "application/json" } : {}) };
  if (payload) init.body = JSON.stringify(payload);
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (err) {
    return { status: 0, body: { error: { code: "network", message: "the server cannot be reached; is it running?" } } };
  }
  if (response.status === 401) {
    const refused = Boolean(token());  // a token was sent and the server said no
    if (refused) forgetToken();
    await askForToken(refused);
    return api(method, path, payload);
  }
  access = response.headers.get("X-Jobqueue-Access") || access;
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return { status: response.status, body };
}

export async function rawBody(id) {
  const response = await fetch(`${BASE}/results/${encodeURIComponent(id)}/body`, { headers: headers() });
  if (!response.ok) throw new Error(`body: HTTP ${response.status}`);
  return response.blob();
}

// What a rendered job's render captured: "screenshot" (PNG) or "pdf".
export async function capture(id, kind) {
  const response = await fetch(`${BASE}/results/${encodeURIComponent(id)}/${kind}`, { headers: headers() });
  if (!response.ok) throw new Error(`${kind}: HTTP ${response.status}`);
  return response.blob();
}

// A result's readable view ("markdown" or "text") as text: {status, text} or {status, error: {code, message}}.
export async function readable(id, view, params = {}) {
  const query = new URLSearchParams(params).toString();
  const url = `${BASE}/results/${encodeURIComponent(id)}/${view}${query ? `?${query}` : ""}`;
  let response;
  try {
    response = await fetch(url, { headers: headers({ Accept: "text/markdown, text/plain, application/json" }) });
  } catch {
    return { status: 0, error: { code: "network", message: "the server cannot be reached; is it running?" } };
  }
  if (response.ok) return { status: response.status, text: await response.text() };
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  return { status: response.status, error: body?.error };
}

export function eventsUrl() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = token() ? `&token=${encodeURIComponent(token())}` : "";
  return `${scheme}://${location.host}${BASE}/events?batch=1${query}`;
}
