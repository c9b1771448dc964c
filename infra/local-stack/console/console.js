// The local console: the reference integration of every call a frontend
// makes. Plain JavaScript, same origin, no third-party resources.
"use strict";
const api = location.origin;
let token = sessionStorage.getItem("token");
let providers = [];
const $ = (id) => document.getElementById(id);

async function call(method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (token) init.headers.authorization = "Bearer " + token;
  if (body !== undefined) {
    if (typeof body === "string" || body instanceof Blob) init.body = body;
    else { init.body = JSON.stringify(body); init.headers["content-type"] = "application/json"; }
  }
  const r = await fetch(api + path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: r.status, data };
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") e.addEventListener("click", v); else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return e;
}

// --- sign in ---------------------------------------------------------------
$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = Object.fromEntries(new FormData(ev.target));
  const r = await call("POST", "/dev/token", form);
  if (r.status !== 200) { alert(r.data.error.message); return; }
  token = r.data.token;
  sessionStorage.setItem("token", token);
  start();
});

async function start() {
  $("signin").hidden = true;
  $("app").hidden = false;
  const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  $("who").textContent = `${payload.sub} · ${payload.role} · ${payload.workspace_id}`;
  // Members with an email get alert emails (the local outbox folder).
  if (payload.role === "admin" && payload.email) {
    await call("PUT", "/v1/members/" + encodeURIComponent(payload.sub), { email: payload.email, role: payload.role });
  }
  showInstall();
  await loadCatalog();
  await refresh();
  setInterval(refresh, 1500);
}

// --- installs the platform started (the claim is in the URL's fragment) ----
function showInstall() {
  const claim = new URLSearchParams(location.hash.slice(1)).get("install");
  if (!claim) return;
  $("install").hidden = false;
  $("install-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const name = $("install-name").value.trim();
    const r = await call("POST", "/v1/installs/claim", name ? { claim, name } : { claim });
    if (r.status === 200 || r.status === 201) {
      $("install-result").textContent = r.data.reconnected ? "Reconnected the store's data source." : "Connected.";
      history.replaceState(null, "", location.pathname);
      $("install-form").hidden = true;
      refresh();
    } else {
      $("install-result").textContent = `${r.data.error.message} ${r.data.error.action}`;
    }
  };
}

// --- catalog ---------------------------------------------------------------
async function loadCatalog() {
  providers = (await call("GET", "/v1/providers")).data.providers;
  const groups = { oauth2: "OAuth", oauth1: "OAuth", api_key: "API key", file_upload: "File upload" };
  const box = $("catalog");
  box.replaceChildren();
  for (const label of ["OAuth", "API key", "File upload"]) {
    const group = el("div", { class: "group" }, el("h3", {}, label));
    for (const p of providers.filter((p) => groups[p.method] === label)) {
      group.append(el("span", { class: "provider", "data-platform": p.id },
        el("button", { type: "button", id: "connect-" + p.id, onclick: () => connect(p) }, p.name),
        el("small", {}, p.required_role ? "Needs: " + p.required_role : "")));
    }
    box.append(group);
  }
}

function connect(p) {
  $("connect-message").textContent = "";
  if (p.method === "oauth2" || p.method === "oauth1") return connectOAuth(p, null);
  if (p.method === "api_key") return showApiKey(p);
  return createFileConnection(p);
}

// --- OAuth: popup and the postMessage contract ------------------------------
async function connectOAuth(p, reconnect) {
  const params = {};
  for (const param of p.params || []) {
    const v = prompt(`${param.label} (for example ${param.example || ""})`);
    if (v === null) return;
    params[param.name] = v;
  }
  // Open the popup first, synchronously with the click, so it is not blocked.
  const popup = window.open("about:blank", "connect", "popup,width=560,height=700");
  const body = { platform: p.id, name: p.name, params, return_to: location.origin + "/" };
  if (reconnect) body.reconnect = reconnect;
  const r = await call("POST", "/v1/connect/start", body);
  if (r.status !== 200) {
    popup && popup.close();
    $("connect-message").textContent = `${r.data.error.code}: ${r.data.error.message}`;
    return;
  }
  // The launch URL binds the flow to this browser, then goes on to the platform.
  if (!popup) { location.href = r.data.launch_url; return; }
  popup.location = r.data.launch_url;
}

window.addEventListener("message", (event) => {
  if (event.origin !== api) return;
  const m = event.data;
  if (!m || m.type !== "connections:oauth") return;
  $("connect-message").textContent = m.status === "connected"
    ? "Connected: the initial sync has started."
    : `Connection failed (${m.error_code}): ${m.message}`;
  refresh();
});

// --- API keys ---------------------------------------------------------------
let apiKeyPlatform = null;
function showApiKey(p) {
  apiKeyPlatform = p;
  $("apikey").hidden = false;
  $("apikey-platform").textContent = p.name;
  $("apikey-help").textContent = p.key_help || "";
  $("apikey-error").textContent = "";
  const fields = $("apikey-fields");
  fields.replaceChildren();
  for (const f of p.key_fields) {
    fields.append(el("label", {}, f.label + " ", el("input", { name: f.name, id: "key-" + f.name, required: "", autocomplete: "off", type: f.secret ? "password" : "text" })));
  }
}

$("apikey-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const credentials = Object.fromEntries(new FormData(ev.target));
  const r = await call("POST", "/v1/connections/api-key", { platform: apiKeyPlatform.id, name: apiKeyPlatform.name, credentials });
  if (r.status === 201 || r.status === 200) {
    $("apikey-error").textContent = "";
    $("apikey").hidden = true;
    $("connect-message").textContent = `Connected ${apiKeyPlatform.name}.`;
    refresh();
  } else {
    $("apikey-error").textContent = `${r.data.error.code}: ${r.data.error.message} ${r.data.error.action}`;
  }
});

// --- file uploads -----------------------------------------------------------
let uploadTarget = null;
async function createFileConnection(p) {
  const r = await call("POST", "/v1/connections/file-upload", { platform: p.id, name: p.name, upload_schedule: "monthly" });
  if (r.status !== 201) { $("connect-message").textContent = r.data.error.message; return; }
  showUpload(r.data);
  refresh();
}

function showUpload(c) {
  uploadTarget = c;
  $("upload").hidden = false;
  $("upload-target").textContent = c.name;
  $("upload-result").textContent = "";
  $("upload-errors").replaceChildren();
}

$("upload-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const r = await call("POST", `/v1/connections/${uploadTarget.id}/uploads`, file, { "content-type": "text/csv" });
  const list = $("upload-errors");
  list.replaceChildren();
  if (r.status === 201 || r.status === 200) {
    $("upload-result").textContent = `${r.data.state}: ${r.data.valid_rows} rows`;
  } else {
    $("upload-result").textContent = `${r.data.error.code}: ${r.data.error.message}`;
    for (const e of (r.data.upload && r.data.upload.errors) || []) {
      list.append(el("li", {}, `Line ${e.line}${e.column ? ", " + e.column : ""}: ${e.message} (${e.code})`));
    }
  }
  refresh();
});

// --- lists ------------------------------------------------------------------
function progress(c) {
  const parts = Object.entries(c.progress || {}).map(([s, p]) => `${s} ${p.percent != null ? p.percent + "%" : p.records}`);
  return parts.join(", ");
}

// Every page of a list (a page holds up to 100), as one answer.
async function all(route, key, filter = "") {
  const items = [];
  let path = route + filter;
  for (;;) {
    const r = await call("GET", path);
    if (r.status !== 200) return r;
    items.push(...r.data[key]);
    if (!r.data.next_cursor) return { status: 200, data: { ...r.data, [key]: items, next_cursor: null } };
    path = route + (filter ? filter + "&" : "?") + "cursor=" + encodeURIComponent(r.data.next_cursor);
  }
}

let generation = 0;
async function refresh() {
  // Only the newest refresh paints: an older one that answers late (the
  // periodic refresh racing a filter change) is dropped.
  const mine = ++generation;
  const filter = $("only-disconnected").checked ? "?status=disconnected" : "";
  const day = (back) => new Date(Date.now() - back * 86_400_000).toISOString().slice(0, 10);
  const [cs, auths, notes, spend] = await Promise.all([
    all("/v1/connections", "connections", filter),
    all("/v1/authorizations", "authorizations"),
    call("GET", "/v1/notifications"),
    call("GET", `/v1/spend?from=${day(13)}&to=${day(0)}`),
  ]);
  if (mine !== generation) return;
  const body = $("connections").querySelector("tbody");
  body.replaceChildren();
  for (const c of cs.data.connections) {
    const state = c.status.state;
    const actions = el("td");
    if (state === "disconnected" && c.credential.kind === "authorization") {
      actions.append(el("button", { type: "button", onclick: () => reconnect({ connection_id: c.id }, c.platform) }, "Reconnect"));
    }
    if (c.credential.kind === "file_upload") actions.append(el("button", { type: "button", onclick: () => showUpload(c) }, "Upload"));
    actions.append(el("button", { type: "button", class: "history", onclick: () => showRuns(c) }, "History"));
    const fresh = el("td", { class: "fresh" }, c.data_fresh_as_of ? new Date(c.data_fresh_as_of).toLocaleString() : "");
    if (c.stale) fresh.append(" ", el("span", { class: "badge stale", title: c.stale_reason ? `${c.stale_reason.message} ${c.stale_reason.action}` : "" }, "not syncing"));
    body.append(el("tr", { "data-connection": c.id, "data-state": state },
      el("td", {}, c.name), el("td", {}, c.platform), el("td", {}, c.client ? c.client.name : ""),
      el("td", {}, el("span", { class: "badge " + state }, state.replaceAll("_", " ") + (c.status.reason ? ` (${c.status.reason})` : ""))),
      el("td", { class: "progress" }, progress(c)),
      fresh, el("td", { class: "next-sync" }, c.next_sync_at ? new Date(c.next_sync_at).toLocaleString() : ""), actions));
  }
  const sb = $("spend").querySelector("tbody");
  sb.replaceChildren();
  const totals = ((spend.data && spend.data.totals) || []).slice().reverse();
  for (const t of totals) {
    sb.append(el("tr", { "data-date": t.date }, el("td", {}, t.date), el("td", { class: "amount" }, t.spend),
      el("td", {}, t.currency || ""), el("td", {}, String(t.connections))));
  }
  if (!totals.length) sb.append(el("tr", {}, el("td", { colspan: "4" }, "No ad spend yet: connect an ad platform.")));
  const al = $("authorizations");
  al.replaceChildren();
  for (const a of (auths.data && auths.data.authorizations) || []) {
    al.append(el("li", { "data-authorization": a.id }, `${a.name} — ${a.platform}, ${a.account ? a.account.id : ""}, ${a.status.state}; used by: `,
      a.connections.map((c) => c.name + (c.client ? ` (${c.client.name})` : "")).join(", ") || "nothing"));
  }
  const tray = $("notifications");
  tray.replaceChildren();
  const list = (notes.data && notes.data.notifications) || [];
  $("unread").hidden = !(notes.data && notes.data.unread > 0);
  for (const n of list) {
    const li = el("li", { "data-kind": n.kind }, `${new Date(n.created_at).toLocaleString()} — ${n.data_source}${n.client_name ? " (" + n.client_name + ")" : ""} on ${n.platform}: ${n.message} `);
    if (n.action && n.action.kind === "reconnect") {
      li.append(el("button", { type: "button", class: "reconnect", onclick: () => reconnect({ connection_id: n.action.connection_id, authorization_id: n.action.authorization_id }, n.platform) }, "Reconnect"));
    }
    tray.append(li);
  }
}

// --- run history ------------------------------------------------------------
async function showRuns(c) {
  const r = await call("GET", `/v1/connections/${c.id}/runs?limit=20`);
  $("runs").hidden = false;
  $("runs-of").textContent = c.name;
  const body = $("runs").querySelector("tbody");
  body.replaceChildren();
  for (const run of (r.data && r.data.runs) || []) {
    const records = Object.values(run.streams || {}).reduce((n, s) => n + s.records, 0);
    body.append(el("tr", { "data-outcome": run.outcome },
      el("td", {}, new Date(run.started_at).toLocaleString()), el("td", {}, run.trigger || ""), el("td", {}, run.kind),
      el("td", {}, el("span", { class: "badge " + run.outcome }, run.outcome + (run.error_code ? ` (${run.error_code})` : ""))),
      el("td", {}, String(records)), el("td", {}, run.finished_at ? new Date(run.finished_at).toLocaleString() : "")));
  }
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: "6" }, "No runs yet.")));
}

function reconnect(target, platform) {
  const p = providers.find((x) => x.id === platform);
  const clean = Object.fromEntries(Object.entries(target).filter(([, v]) => v));
  if (clean.connection_id) delete clean.authorization_id;
  connectOAuth(p, clean);
}

$("only-disconnected").addEventListener("change", refresh);
$("bell").addEventListener("click", () => { $("tray").hidden = !$("tray").hidden; });
$("read-all").addEventListener("click", async () => { await call("POST", "/v1/notifications/read-all"); refresh(); });

if (token) start();
