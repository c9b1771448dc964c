// The local console: a sign-in form for development tokens, the drop-in
// <connections-panel> (frontend/, built to /panel.js) and the daily spend
// table read through the same SDK. Same origin, no third-party resources.
import { Connections } from "/panel.js";

const $ = (id) => document.getElementById(id);
const panel = $("panel");

$("signin-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const r = await fetch("/dev/token", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(Object.fromEntries(new FormData(ev.target))),
  });
  const body = await r.json();
  if (!r.ok) {
    $("signin-error").textContent = `${body.error.message} ${body.error.action}`;
    return;
  }
  sessionStorage.setItem("token", body.token);
  start(body.token);
});

$("signout").addEventListener("click", () => {
  sessionStorage.removeItem("token");
  location.reload();
});

async function start(token) {
  const sdk = new Connections({ baseUrl: location.origin, token });
  const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  $("who").textContent = `${claims.sub} · ${claims.role} · ${claims.workspace_id}`;
  $("signin").hidden = true;
  $("signout").hidden = false;
  // Members with an email get alert emails (the local outbox folder). An
  // existing member is left as is: a PUT would reset their email settings.
  if (claims.role === "admin" && claims.email) {
    const known = await sdk.me().then(() => true, () => false);
    if (!known) {
      await sdk.api.PUT("/v1/members/{user_id}", { params: { path: { user_id: claims.sub } }, body: { email: claims.email, role: claims.role } });
    }
  }
  panel.connections = sdk;
  panel.hidden = false;
  showInstall(sdk);
  $("spend-card").hidden = false;
  await spend(sdk);
  setInterval(() => spend(sdk), 3000);
}

// An install the platform started (the claim is in the URL's fragment).
function showInstall(sdk) {
  const claim = new URLSearchParams(location.hash.slice(1)).get("install");
  if (!claim) return;
  $("install").hidden = false;
  $("install-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const name = $("install-name").value.trim();
    const { data, error } = await sdk.api.POST("/v1/installs/claim", { body: name ? { claim, name } : { claim } });
    if (error) {
      $("install-result").textContent = `${error.error.message} ${error.error.action}`;
      return;
    }
    $("install-result").textContent = data.reconnected ? "Reconnected the store's data source." : "Connected.";
    history.replaceState(null, "", location.pathname);
    $("install-form").hidden = true;
    panel.refresh();
  };
}

async function spend(sdk) {
  const day = (back) => new Date(Date.now() - back * 86_400_000).toISOString().slice(0, 10);
  const { data } = await sdk.api.GET("/v1/spend", { params: { query: { from: day(13), to: day(0) } } });
  const rows = ((data && data.totals) || []).slice().reverse().map((t) => {
    const tr = document.createElement("tr");
    tr.dataset.date = t.date;
    for (const v of [t.date, t.spend, t.currency || "", String(t.connections)]) tr.append(Object.assign(document.createElement("td"), { textContent: v }));
    return tr;
  });
  if (!rows.length) {
    const tr = document.createElement("tr");
    tr.append(Object.assign(document.createElement("td"), { colSpan: 4, textContent: "No ad spend yet: connect an ad platform." }));
    rows.push(tr);
  }
  $("spend").querySelector("tbody").replaceChildren(...rows);
}

const saved = sessionStorage.getItem("token");
if (saved) start(saved);
