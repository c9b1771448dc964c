// <connections-panel>: a framework-free web component on the SDK. Catalog
// with search and the role each platform needs, connect by every method,
// the status table (progress, freshness, next sync) updated in place so
// focus stays put, the notifications tray with Reconnect and Replace key,
// and the named authorizations. Themable with CSS custom properties:
//   --cp-font, --cp-fg, --cp-bg, --cp-muted, --cp-border, --cp-accent,
//   --cp-accent-fg, --cp-danger, --cp-ok, --cp-warn, --cp-radius.
import {
  ALERT_KINDS,
  Connections,
  ConnectionsError,
  errorLine,
  redirectResult,
  statusLabel,
  type AlertKind,
  type Authorization,
  type Connection,
  type Notification,
  type Provider,
} from "./index";

export { Connections, ConnectionsError, redirectResult, statusLabel };

const METHODS: Record<string, string> = { oauth2: "Sign in", oauth1: "Sign in", api_key: "API key", file_upload: "File upload" };

const STYLE = `
:host { display: block; font: 15px/1.45 var(--cp-font, system-ui, sans-serif); color: var(--cp-fg, #1b1f24); background: var(--cp-bg, #fff);
  --_accent: var(--cp-accent, #0b5cad); --_muted: var(--cp-muted, #4d5562); --_border: var(--cp-border, #d0d5dc);
  --_danger: var(--cp-danger, #a4161a); --_ok: var(--cp-ok, #176b2c); --_warn: var(--cp-warn, #8a4b00); --_radius: var(--cp-radius, 8px); }
* { box-sizing: border-box; }
section { border: 1px solid var(--_border); border-radius: var(--_radius); padding: 12px 14px; margin: 0 0 14px; min-width: 0; }
h2 { font-size: 1.05em; margin: 0 0 8px; }
h3 { font-size: .95em; margin: 10px 0 6px; color: var(--_muted); }
button { font: inherit; border: 1px solid var(--_accent); background: var(--_accent); color: var(--cp-accent-fg, #fff); border-radius: 6px; padding: 5px 10px; cursor: pointer; margin: 2px 4px 2px 0; }
button.secondary { background: transparent; color: var(--_accent); }
button:focus-visible, input:focus-visible, select:focus-visible, summary:focus-visible { outline: 3px solid var(--_accent); outline-offset: 2px; }
input, select { font: inherit; padding: 5px 8px; border: 1px solid var(--_muted); border-radius: 6px; max-width: 100%; }
label { display: inline-flex; flex-direction: column; gap: 2px; margin: 0 10px 8px 0; max-width: 100%; }
label.check { flex-direction: row; align-items: center; gap: 6px; margin: 0; }
fieldset { border: 0; padding: 0; margin: 0 0 8px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
legend { padding: 0; margin-bottom: 4px; color: var(--_muted); }
.bar { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 8px; margin-bottom: 10px; }
.catalog { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 8px; }
.platform { border: 1px solid var(--_border); border-radius: 6px; padding: 8px; display: flex; flex-direction: column; gap: 4px; }
.platform small, .muted { color: var(--_muted); }
.badge { display: inline-block; border-radius: 999px; padding: 1px 8px; font-size: .85em; font-weight: 600; border: 1px solid currentColor; }
.badge[data-state="connected"] { color: var(--_ok); }
.badge[data-state="disconnected"], .badge[data-state="error"] { color: var(--_danger); }
.badge[data-state="initial_sync_in_progress"], .badge[data-state="pending_authorization"] { color: var(--_warn); }
.error { color: var(--_danger); }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--_border); vertical-align: top; overflow-wrap: anywhere; }
th { overflow-wrap: normal; white-space: nowrap; }
progress { width: 100%; max-width: 160px; }
.count { display: inline-block; min-width: 1.5em; padding: 0 5px; border-radius: 999px; background: var(--_danger); color: #fff; font-size: .8em; text-align: center; }
ul { padding-left: 18px; margin: 4px 0; }
li { margin: 4px 0; }
form.inline { border-top: 1px dashed var(--_border); margin-top: 8px; padding-top: 8px; }
@media (max-width: 640px) {
  thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table, tbody, tr, td { display: block; width: 100%; }
  tr { border: 1px solid var(--_border); border-radius: 6px; margin-bottom: 8px; padding: 4px 0; }
  td { border: 0; padding: 3px 8px; }
  td[data-label]::before { content: attr(data-label) ": "; color: var(--_muted); }
}
`;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | undefined> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function progressOf(c: Connection): { text: string; percent: number | null } {
  const streams = Object.entries(c.progress ?? {});
  if (!streams.length) return { text: "—", percent: null };
  const percents = streams.map(([, p]) => p.percent).filter((p): p is number => p != null);
  const percent = percents.length === streams.length ? Math.round(percents.reduce((a, b) => a + b, 0) / streams.length) : null;
  const records = streams.reduce((n, [, p]) => n + p.records, 0);
  return { text: `${percent != null ? percent + "% · " : ""}${records.toLocaleString()} records`, percent };
}

/** Sets text only when it changed, so screen readers and selections are left alone. */
function setText(node: Element, text: string) {
  if (node.textContent !== text) node.textContent = text;
}

export class ConnectionsPanel extends HTMLElement {
  static observedAttributes = ["api-base"];
  private sdk: Connections | null = null;
  private tokenValue: string | (() => string | Promise<string>) | null = null;
  private providers: Provider[] = [];
  private root: ShadowRoot;
  private timer: ReturnType<typeof setInterval> | undefined;
  private generation = 0;
  private rows = new Map<string, HTMLTableRowElement>();
  private followedLink = false;
  private ui!: {
    status: HTMLElement; alert: HTMLElement; tray: HTMLElement; trayList: HTMLElement; bell: HTMLButtonElement; count: HTMLElement;
    search: HTMLInputElement; catalog: HTMLElement; form: HTMLElement; tbody: HTMLTableSectionElement; empty: HTMLElement;
    auths: HTMLElement; filter: HTMLInputElement;
  };
  private get prefs() {
    return { body: this.root.getElementById("email-preferences") as HTMLElement, button: this.root.getElementById("email-preferences-button") as HTMLButtonElement };
  }

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
  }

  /** The user's bearer token (or a function returning a fresh one). Setting it (re)starts the panel. */
  set token(value: string | (() => string | Promise<string>) | null) {
    this.tokenValue = value;
    this.start();
  }
  get token() {
    return this.tokenValue;
  }

  /** The SDK instance the panel uses (set it to share yours). */
  set connections(sdk: Connections | null) {
    this.sdk = sdk;
    this.start();
  }
  get connections() {
    return this.sdk;
  }

  connectedCallback() {
    this.render();
    this.start();
  }

  disconnectedCallback() {
    clearInterval(this.timer);
  }

  attributeChangedCallback() {
    if (this.tokenValue) this.sdk = null;
    this.start();
  }

  private client(): Connections | null {
    if (this.sdk) return this.sdk;
    if (!this.tokenValue) return null;
    const token = this.tokenValue;
    this.sdk = new Connections({ baseUrl: this.getAttribute("api-base") || location.origin, token });
    return this.sdk;
  }

  private render() {
    if (this.ui) return;
    // A constructed style sheet: pages with a strict Content-Security-Policy
    // (no inline styles) still style the panel.
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(STYLE);
    this.root.adoptedStyleSheets = [sheet];
    const status = el("p", { id: "message", role: "status", "aria-live": "polite", class: "muted" });
    const alert = el("div", { id: "alert", role: "alert" });
    const count = el("span", { class: "count", hidden: "" });
    const bell = el("button", { type: "button", id: "bell", class: "secondary", "aria-expanded": "false", "aria-controls": "tray" }, "Notifications ", count);
    const trayList = el("ul", { id: "notifications" });
    const readAll = el("button", { type: "button", class: "secondary" }, "Mark all read");
    readAll.addEventListener("click", () => this.act(async (sdk) => { await sdk.markAllRead(); }));
    const tray = el("section", { id: "tray", "aria-label": "Notifications", hidden: "" }, el("h2", {}, "Notifications"), readAll, trayList);
    bell.addEventListener("click", () => {
      tray.hidden = !tray.hidden;
      bell.setAttribute("aria-expanded", String(!tray.hidden));
    });
    const filter = el("input", { type: "checkbox", id: "only-disconnected" });
    filter.addEventListener("change", () => this.refresh());
    const tbody = el("tbody");
    const empty = el("p", { class: "muted" }, "No data sources yet: connect one below.");
    const table = el("table", { id: "connections", "aria-label": "Data sources" },
      el("thead", {}, el("tr", {}, ...["Name", "Platform", "Client", "Status", "Progress", "Data fresh as of", "Next sync", "Actions"].map((h) => el("th", { scope: "col" }, h)))),
      tbody);
    const filterLabel = el("label", { class: "check" }, filter, "Disconnected only");
    const sources = el("section", { "aria-labelledby": "sources-h" },
      el("div", { class: "bar" }, el("h2", { id: "sources-h" }, "Data sources"), el("div", {}, filterLabel, bell)),
      table, empty);
    const search = el("input", { type: "search", id: "search", placeholder: "Shopify, Google Ads…", autocomplete: "off" });
    search.addEventListener("input", () => this.paintCatalog());
    const catalog = el("div", { class: "catalog" });
    const form = el("div");
    const connect = el("section", { "aria-labelledby": "connect-h" },
      el("h2", { id: "connect-h" }, "Connect a data source"),
      el("label", {}, "Search platforms", search),
      form, catalog);
    const auths = el("ul", { id: "authorizations" });
    const authorizations = el("section", { "aria-labelledby": "auths-h" }, el("h2", { id: "auths-h" }, "Authorizations"), auths);
    const prefsBody = el("div", { id: "email-preferences" });
    const prefsButton = el("button", { type: "button", class: "secondary", id: "email-preferences-button", "aria-expanded": "false", "aria-controls": "email-preferences" }, "Email preferences");
    prefsButton.addEventListener("click", () => (prefsBody.childElementCount ? this.closePreferences() : this.preferences()));
    const emails = el("section", { "aria-labelledby": "emails-h" },
      el("div", { class: "bar" }, el("h2", { id: "emails-h" }, "Alert emails"), prefsButton), prefsBody);
    this.root.replaceChildren(status, alert, tray, sources, connect, authorizations, emails);
    this.ui = { status, alert, tray, trayList, bell, count, search, catalog, form, tbody, empty, auths, filter };
  }

  private async start() {
    if (!this.isConnected) return;
    this.render();
    const sdk = this.client();
    clearInterval(this.timer);
    if (!sdk) {
      setText(this.ui.status, "Sign in to see your data sources.");
      return;
    }
    try {
      this.providers = await sdk.providers();
    } catch (e) {
      this.showError(e);
      return;
    }
    this.paintCatalog();
    this.readRedirect();
    // The page emails' "Email preferences" link leads to.
    if (location.pathname.endsWith("/settings/email")) this.preferences();
    await this.refresh();
    const every = Number(this.getAttribute("refresh-seconds") || 3) * 1000;
    this.timer = setInterval(() => this.refresh(), every);
  }

  private provider(id: string): Provider | undefined {
    return this.providers.find((p) => p.id === id);
  }

  private paintCatalog() {
    const q = this.ui.search.value.trim().toLowerCase();
    const shown = this.providers.filter((p) => !q || p.name.toLowerCase().includes(q) || p.id.includes(q) || (p.category ?? "").toLowerCase().includes(q));
    const cards = shown.map((p) => {
      const button = el("button", { type: "button", id: `connect-${p.id}`, "aria-label": `Connect ${p.name}` }, "Connect");
      button.addEventListener("click", () => this.connect(p));
      return el("div", { class: "platform", "data-platform": p.id },
        el("strong", {}, p.name),
        el("small", {}, `${METHODS[p.method] ?? p.method}${p.category ? " · " + p.category : ""}`),
        el("small", {}, p.required_role ? `Needs: ${p.required_role}` : "Any account"),
        button);
    });
    this.ui.catalog.replaceChildren(...(cards.length ? cards : [el("p", { class: "muted" }, "No platform matches.")]));
  }

  // --- connecting ------------------------------------------------------------

  private connect(p: Provider) {
    this.clearMessages();
    if (p.method === "oauth2" || p.method === "oauth1") {
      if (p.params.length) return this.paramsForm(p);
      return this.oauth(p, {});
    }
    if (p.method === "api_key") return this.keyForm(p, null);
    return this.act(async (sdk) => {
      const c = await sdk.createFileConnection(p.id, p.name);
      this.uploadForm(c);
    });
  }

  /** Sign-in in this window instead of a popup: attribute `connect-mode="redirect"`, or after a blocked popup. */
  private redirect(p: Provider, params: Record<string, string>, target?: Notification | Connection) {
    const sdk = this.client();
    if (!sdk) return;
    setText(this.ui.status, `Taking you to ${p.name}…`);
    (target ? sdk.reconnectByRedirect(target) : sdk.connectByRedirect(p.id, { name: p.name, params })).catch((e) => this.showError(e));
  }

  /** The outcome of a sign-in by redirect, once, when the browser comes back. */
  private readRedirect() {
    const result = redirectResult(location.href);
    if (!result) return;
    const url = new URL(location.href);
    for (const k of ["status", "connection_id", "authorization_id", "warning", "error_code", "message", "action"]) url.searchParams.delete(k);
    history.replaceState(history.state, "", url);
    if (result instanceof ConnectionsError) this.showError(result);
    else setText(this.ui.status, "Connected: the first sync has started.");
  }

  /** Runs the OAuth popup. Called straight from a click, so the popup opens before any await. */
  private oauth(p: Provider, params: Record<string, string>, target?: Notification | Connection) {
    const sdk = this.client();
    if (!sdk) return;
    if (this.getAttribute("connect-mode") === "redirect") return this.redirect(p, params, target);
    setText(this.ui.status, `Waiting for ${p.name} in the sign-in window…`);
    const flow = target ? sdk.reconnect(target) : sdk.connect(p.id, { name: p.name, params });
    flow.then(
      (r) => {
        setText(this.ui.status, r.warning_message ? `Connected. ${r.warning_message}` : "Connected: the first sync has started.");
        this.ui.form.replaceChildren();
        this.dispatchEvent(new CustomEvent("connections:connected", { detail: r, bubbles: true, composed: true }));
        this.refresh();
      },
      (e) =>
        e instanceof ConnectionsError && e.code === "popup_blocked"
          ? this.showError(e, () => this.redirect(p, params, target), "Continue in this window")
          : this.showError(e, () => this.oauth(p, params, target)),
    );
  }

  private paramsForm(p: Provider) {
    const form = el("form", { class: "inline", "aria-label": `Connect ${p.name}` }, el("h3", {}, `Connect ${p.name}`));
    for (const param of p.params) {
      const input = el("input", { name: param.name, id: `param-${param.name}`, required: "", pattern: param.pattern, placeholder: param.example ?? undefined, autocomplete: "off" });
      form.append(el("label", {}, param.label, input));
    }
    form.append(el("button", { type: "submit" }, "Continue to sign in"));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const params = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v)]));
      this.oauth(p, params);
    });
    this.ui.form.replaceChildren(form);
    (form.querySelector("input") as HTMLInputElement | null)?.focus();
  }

  /** The key form of a platform: a new connection, or a replacement key for one. */
  private keyForm(p: Provider, replacing: Connection | null) {
    const title = replacing ? `Replace the key of ${replacing.name}` : `Connect ${p.name} with an API key`;
    const form = el("form", { class: "inline", id: "apikey-form", "aria-label": title }, el("h3", {}, title));
    if (p.key_help) form.append(el("p", { class: "muted" }, p.key_help));
    for (const f of p.key_fields ?? []) {
      form.append(el("label", {}, f.label, el("input", { name: f.name, id: `key-${f.name}`, required: "", autocomplete: "off", type: f.secret ? "password" : "text" })));
    }
    const error = el("p", { class: "error", id: "apikey-error", role: "alert" });
    form.append(el("button", { type: "submit" }, replacing ? "Replace key" : "Connect"), error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const sdk = this.client();
      if (!sdk) return;
      const credentials = Object.fromEntries([...new FormData(form)].map(([k, v]) => [k, String(v)]));
      try {
        if (replacing) await sdk.replaceKey(replacing, credentials);
        else await sdk.connectApiKey(p.id, credentials, { name: p.name });
        this.ui.form.replaceChildren();
        setText(this.ui.status, replacing ? `Replaced the key of ${replacing.name}.` : `Connected ${p.name}.`);
        this.refresh();
      } catch (e) {
        error.textContent = errorLine(e);
      }
    });
    this.ui.form.replaceChildren(form);
    (form.querySelector("input") as HTMLInputElement | null)?.focus();
  }

  private uploadForm(c: Connection) {
    const file = el("input", { type: "file", id: "upload-file", accept: ".csv,text/csv", required: "" });
    const bar = el("progress", { max: "100", value: "0", hidden: "", "aria-label": "Upload progress" });
    const result = el("p", { id: "upload-result", role: "status" });
    const errors = el("ul", { id: "upload-errors", class: "error" });
    const form = el("form", { class: "inline", id: "upload-form", "aria-label": `Upload a file to ${c.name}` },
      el("h3", {}, `Upload costs (CSV) to ${c.name}`),
      el("label", {}, "CSV file", file), el("button", { type: "submit" }, "Upload"), bar, result, errors);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const sdk = this.client();
      const chosen = file.files?.[0];
      if (!sdk || !chosen) return;
      errors.replaceChildren();
      bar.hidden = false;
      try {
        const up = await sdk.upload(c, chosen, { onProgress: (done, total) => { bar.value = total ? (100 * done) / total : 100; } });
        result.textContent = `${up.state}: ${up.valid_rows ?? 0} rows imported.`;
      } catch (e) {
        result.textContent = errorLine(e);
        const upload = ((e as ConnectionsError).details as { upload?: { errors?: { line: number; column?: string | null; code: string; message: string }[] } } | undefined)?.upload;
        for (const r of upload?.errors ?? []) errors.append(el("li", {}, `Line ${r.line}${r.column ? ", " + r.column : ""}: ${r.message} (${r.code})`));
      }
      this.refresh();
    });
    this.ui.form.replaceChildren(form);
    file.focus();
  }

  // --- refreshing ------------------------------------------------------------

  async refresh() {
    const sdk = this.client();
    if (!sdk || !this.ui) return;
    const mine = ++this.generation;
    try {
      const [connections, authorizations, notes] = await Promise.all([
        sdk.connections(this.ui.filter.checked ? { status: "disconnected" } : {}),
        sdk.authorizations(),
        sdk.notifications(),
      ]);
      if (mine !== this.generation) return;
      this.paintConnections(connections);
      this.paintAuthorizations(authorizations);
      this.paintNotifications(notes.notifications, notes.unread);
      if (this.ui.status.textContent === "Sign in to see your data sources.") setText(this.ui.status, "");
      // Once, after the first refresh that painted the rows.
      if (!this.followedLink) {
        this.followedLink = true;
        this.followEmailLink();
      }
    } catch (e) {
      if (mine === this.generation) this.showError(e);
    }
  }

  /** Rows are kept by connection id and updated in place: focus and selection survive every refresh. */
  private paintConnections(list: Connection[]) {
    const seen = new Set<string>();
    let previous: HTMLTableRowElement | null = null;
    this.latest = new Map(list.map((c) => [c.id, c]));
    for (const c of list) {
      seen.add(c.id);
      let row = this.rows.get(c.id);
      if (!row) {
        row = el("tr", { "data-connection": c.id },
          ...["Name", "Platform", "Client", "Status", "Progress", "Data fresh as of", "Next sync", "Actions"].map((label) => el("td", { "data-label": label })));
        this.rows.set(c.id, row);
      }
      const cells = row.children;
      row.dataset.state = c.status.state;
      row.dataset.platform = c.platform;
      setText(cells[0], c.name);
      setText(cells[1], this.provider(c.platform)?.name ?? c.platform);
      setText(cells[2], c.client?.name ?? "—");
      let badge = cells[3].querySelector(".badge");
      if (!badge) cells[3].replaceChildren((badge = el("span", { class: "badge" })));
      badge.setAttribute("data-state", c.status.state);
      setText(badge, statusLabel(c as Connection & { upload_overdue?: boolean }));
      const progress = progressOf(c);
      cells[4].classList.add("progress");
      setText(cells[4], progress.text);
      const fresh = c.data_fresh_as_of ? when(c.data_fresh_as_of) + (c.stale ? " · not syncing" : "") : c.stale ? "not syncing" : "—";
      setText(cells[5], fresh);
      cells[5].setAttribute("title", c.stale_reason ? `${c.stale_reason.message} ${c.stale_reason.action}` : "");
      cells[6].classList.add("next-sync");
      setText(cells[6], when(c.next_sync_at));
      this.paintActions(cells[7] as HTMLElement, c);
      // Keep the server's order without moving rows that are already in place.
      const expected: ChildNode | null = previous ? previous.nextSibling : this.ui.tbody.firstChild;
      if (expected !== row) this.ui.tbody.insertBefore(row, expected);
      previous = row;
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    this.ui.empty.hidden = list.length > 0;
  }

  /** A row's buttons, rebuilt only when the set of actions changes. */
  private paintActions(cell: HTMLElement, c: Connection) {
    const kinds: string[] = [];
    const state = c.status.state;
    if (state === "disconnected" && c.credential.kind === "authorization") kinds.push("reconnect");
    if ((state === "disconnected" || state === "error") && c.credential.kind === "api_key") kinds.push("replace-key");
    if (c.credential.kind === "file_upload") kinds.push("upload");
    if (state === "connected" || state === "error") kinds.push("sync");
    kinds.push("history");
    const key = kinds.join(",");
    if (cell.dataset.actions === key) return;
    cell.dataset.actions = key;
    const buttons = kinds.map((kind) => {
      const label = { reconnect: "Reconnect", "replace-key": "Replace key", upload: "Upload file", sync: "Sync now", history: "History" }[kind]!;
      const b = el("button", { type: "button", class: kind === "sync" || kind === "history" ? `secondary ${kind}` : kind, "aria-label": `${label}: ${c.name}` }, label);
      b.addEventListener("click", () => this.rowAction(kind, c.id));
      return b;
    });
    cell.replaceChildren(...buttons);
  }

  private rowAction(kind: string, id: string) {
    this.clearMessages();
    const sdk = this.client();
    if (!sdk) return;
    // The latest view of the row, read without waiting (the popup must open within the click).
    const c = this.latest.get(id);
    if (!c) return;
    const p = this.provider(c.platform);
    if (kind === "reconnect" && p) return this.oauth(p, {}, c);
    if (kind === "replace-key" && p) return this.keyForm(p, c);
    if (kind === "upload") return this.uploadForm(c);
    if (kind === "history") return this.history(c);
    if (kind === "sync") return this.act(async (s) => { await s.syncNow(id); setText(this.ui.status, `Sync of ${c.name} queued.`); });
  }

  private latest = new Map<string, Connection>();

  /** The connection's recent runs, newest first. */
  private async history(c: Connection) {
    const sdk = this.client();
    if (!sdk) return;
    try {
      const runs = await sdk.runs(c.id);
      const rows = runs.map((r) => {
        const records = Object.values(r.streams ?? {}).reduce((n, s) => n + (s.records ?? 0), 0);
        return el("tr", { "data-outcome": r.outcome },
          el("td", { "data-label": "Started" }, when(r.started_at)), el("td", { "data-label": "Kind" }, r.kind),
          el("td", { "data-label": "Outcome" }, r.outcome + (r.error_code ? ` (${r.error_code})` : "")),
          el("td", { "data-label": "Records" }, records.toLocaleString()), el("td", { "data-label": "Finished" }, when(r.finished_at)));
      });
      const table = el("table", { "aria-label": `Runs of ${c.name}` },
        el("thead", {}, el("tr", {}, ...["Started", "Kind", "Outcome", "Records", "Finished"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "5" }, "No runs yet."))])));
      const close = el("button", { type: "button", class: "secondary" }, "Close");
      close.addEventListener("click", () => this.ui.form.replaceChildren());
      const box = el("div", { class: "inline", id: "runs" }, el("h3", {}, `Run history: ${c.name}`), table, close);
      this.ui.form.replaceChildren(box);
      box.scrollIntoView?.({ block: "nearest" });
    } catch (e) {
      this.showError(e);
    }
  }

  /** One item per authorization, rebuilt only when one changes (its buttons keep focus otherwise). */
  private paintAuthorizations(list: Authorization[]) {
    const key = JSON.stringify(list.map((a) => [a.id, a.name, a.status, a.connections.map((c) => [c.name, c.client?.name])]));
    if (this.ui.auths.dataset.key === key) return;
    this.ui.auths.dataset.key = key;
    this.ui.auths.replaceChildren(...list.map((a) => {
      const account = (a.account as { id?: string; name?: string } | null | undefined);
      const used = a.connections.map((c) => c.name + (c.client ? ` (${c.client.name})` : "")).join(", ") || "nothing";
      const add = el("button", { type: "button", class: "secondary add-source", "aria-label": `Add a data source on ${a.name}` }, "Add a data source");
      add.addEventListener("click", () => this.addSourceForm(a));
      const rename = el("button", { type: "button", class: "secondary rename", "aria-label": `Rename ${a.name}` }, "Rename");
      rename.addEventListener("click", () => this.renameForm(a));
      return el("li", { "data-authorization": a.id },
        el("strong", {}, a.name), ` — ${this.provider(a.platform)?.name ?? a.platform}${account?.name || account?.id ? ", " + (account.name ?? account.id) : ""}, `,
        el("span", { class: "badge", "data-state": a.status.state }, statusLabel({ status: a.status, credential: { kind: "authorization", authorization_id: a.id } })),
        `; used by: ${used} `, add, rename);
    }));
    if (!list.length) this.ui.auths.replaceChildren(el("li", { class: "muted" }, "None yet."));
  }

  /** A new data source or export destination on an authorization the workspace holds: no new sign-in. */
  private addSourceForm(a: Authorization) {
    this.clearMessages();
    const name = el("input", { name: "name", id: "source-name", required: "", maxlength: "100", autocomplete: "off" });
    const role = el("select", { name: "role", id: "source-role" }, el("option", { value: "source" }, "Data source"), el("option", { value: "destination" }, "Export destination"));
    const client = el("input", { name: "client", id: "source-client", maxlength: "100", autocomplete: "off" });
    const error = el("p", { class: "error", role: "alert" });
    const form = el("form", { class: "inline", id: "source-form", "aria-label": `Add a data source on ${a.name}` },
      el("h3", {}, `Add a data source on ${a.name}`),
      el("label", {}, "Name", name), el("label", {}, "Kind", role), el("label", {}, "Client (optional)", client),
      el("button", { type: "submit" }, "Add"), error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const sdk = this.client();
      if (!sdk) return;
      const clientName = client.value.trim();
      try {
        const c = await sdk.createConnection(a.id, {
          name: name.value.trim(),
          role: role.value as "source" | "destination",
          ...(clientName ? { client: { id: clientName.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 64) || "client", name: clientName } } : {}),
        });
        this.ui.form.replaceChildren();
        setText(this.ui.status, `Added ${c.name} on ${a.name}.`);
        this.refresh();
      } catch (e) {
        error.textContent = errorLine(e);
      }
    });
    this.ui.form.replaceChildren(form);
    name.focus();
  }

  private renameForm(a: Authorization) {
    this.clearMessages();
    const name = el("input", { name: "name", id: "authorization-name", required: "", maxlength: "100", autocomplete: "off", value: a.name });
    const error = el("p", { class: "error", role: "alert" });
    const form = el("form", { class: "inline", id: "rename-form", "aria-label": `Rename ${a.name}` },
      el("h3", {}, `Rename ${a.name}`), el("label", {}, "New name", name), el("button", { type: "submit" }, "Rename"), error);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const sdk = this.client();
      if (!sdk) return;
      try {
        const renamed = await sdk.renameAuthorization(a.id, name.value.trim());
        this.ui.form.replaceChildren();
        setText(this.ui.status, `Renamed to ${renamed.name}.`);
        this.refresh();
      } catch (e) {
        error.textContent = errorLine(e);
      }
    });
    this.ui.form.replaceChildren(form);
    name.focus();
  }

  private paintNotifications(list: Notification[], unread: number) {
    this.ui.count.hidden = unread <= 0;
    setText(this.ui.count, unread > 0 ? String(unread) : "");
    this.ui.bell.setAttribute("aria-label", unread > 0 ? `Notifications, ${unread} unread` : "Notifications");
    const key = list.map((n) => n.id + (n.read_at ?? "")).join();
    if (this.ui.trayList.dataset.key === key) return;
    this.ui.trayList.dataset.key = key;
    this.ui.trayList.replaceChildren(...list.map((n) => {
      const li = el("li", { "data-kind": n.kind },
        el("span", { class: "muted" }, new Date(n.created_at).toLocaleString()), " — ",
        el("strong", {}, n.data_source), n.client_name ? ` (${n.client_name})` : "", ` on ${this.provider(n.platform)?.name ?? n.platform}: ${n.message} `);
      if (n.action.kind === "reconnect") {
        const b = el("button", { type: "button", class: "reconnect" }, "Reconnect");
        b.addEventListener("click", () => {
          const p = this.provider(n.platform);
          if (p) this.oauth(p, {}, n);
        });
        li.append(b);
      } else if (n.action.kind === "replace_key") {
        const b = el("button", { type: "button", class: "replace-key" }, "Replace key");
        const id = n.action.connection_id;
        b.addEventListener("click", () => {
          const c = this.latest.get(id);
          const p = this.provider(n.platform);
          if (c && p) this.keyForm(p, c);
        });
        li.append(b);
      }
      return li;
    }));
    if (!list.length) this.ui.trayList.replaceChildren(el("li", { class: "muted" }, "Nothing new."));
  }

  // --- messages --------------------------------------------------------------

  private clearMessages() {
    this.ui.alert.replaceChildren();
    setText(this.ui.status, "");
  }

  private showError(e: unknown, retry?: () => void, retryLabel = "Try again") {
    const err = e instanceof ConnectionsError ? e : new ConnectionsError("internal", String(e), "Reload the page and try again.");
    setText(this.ui.status, "");
    const box = el("p", { class: "error", "data-code": err.code }, el("strong", {}, err.message), ` ${err.action} `, el("span", { class: "muted" }, `(${err.code})`));
    if (retry) {
      const again = el("button", { type: "button", class: "secondary retry" }, retryLabel);
      again.addEventListener("click", () => {
        this.clearMessages();
        retry();
      });
      box.append(" ", again);
    }
    this.ui.alert.replaceChildren(box);
    this.dispatchEvent(new CustomEvent("connections:error", { detail: err, bubbles: true, composed: true }));
  }

  /**
   * The pages an alert email's button leads to (`/reconnect`, `/replace-key`,
   * `/upload`, `/sync`, each with `connection_id`): the row is brought into
   * view and its action opened. A sign-in needs the person's own click (a
   * popup opens only from one), so Reconnect is focused and says so.
   */
  private followEmailLink() {
    const page = ["reconnect", "replace-key", "upload", "sync"].find((p) => location.pathname.replace(/\/+$/, "").endsWith("/" + p));
    const id = new URLSearchParams(location.search).get("connection_id");
    if (!page || !id) return;
    const c = this.latest.get(id);
    const row = this.rows.get(id);
    if (!c || !row) return setText(this.ui.status, "That data source is not in this workspace any more.");
    row.scrollIntoView?.({ block: "center" });
    const p = this.provider(c.platform);
    if (page === "sync") return void this.history(c);
    if (page === "upload") return this.uploadForm(c);
    if (page === "replace-key" && p) return this.keyForm(p, c);
    const reconnect = row.querySelector<HTMLButtonElement>("button.reconnect");
    if (!reconnect) return setText(this.ui.status, `${c.name} is connected: nothing to do.`);
    reconnect.focus();
    setText(this.ui.status, `Press Reconnect to sign in to ${p?.name ?? c.platform} again for ${c.name}.`);
  }

  // --- email preferences -----------------------------------------------------

  private closePreferences() {
    this.prefs.body.replaceChildren();
    this.prefs.button.setAttribute("aria-expanded", "false");
  }

  /** Which kinds of alert email reach me, and the time zone their times are in. */
  private preferences() {
    this.act(async (sdk) => {
      const me = await sdk.me();
      const off = new Set<AlertKind>(me.email_opt_out ?? []);
      const form = el("form", { class: "inline", id: "preferences-form", "aria-label": "Email preferences" });
      const kinds = el("fieldset", {}, el("legend", {}, `Email ${me.email} about`));
      for (const { kind, label } of ALERT_KINDS) {
        const box = el("input", { type: "checkbox", name: "kind", value: kind, id: `email-${kind}` });
        box.checked = !off.has(kind);
        kinds.append(el("label", { class: "check" }, box, label));
      }
      const zones = ["UTC", ...((Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.("timeZone") ?? [])];
      const zone = el("select", { id: "time-zone", name: "time_zone" }, ...[...new Set(zones)].map((z) => el("option", { value: z }, z)));
      zone.value = me.time_zone ?? "UTC";
      form.append(kinds, el("label", {}, "Times in emails are in", zone), el("button", { type: "submit" }, "Save"));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const on = new Set(new FormData(form).getAll("kind").map(String));
        const email_opt_out = ALERT_KINDS.map((k) => k.kind).filter((k) => !on.has(k));
        this.act(async (sdk) => {
          await sdk.updateMe({ email_opt_out, time_zone: zone.value === "UTC" ? null : zone.value });
          setText(this.ui.status, "Saved your email preferences.");
        });
      });
      this.prefs.body.replaceChildren(form);
      this.prefs.button.setAttribute("aria-expanded", "true");
    });
  }

  private async act(f: (sdk: Connections) => Promise<void>) {
    const sdk = this.client();
    if (!sdk) return;
    try {
      await f(sdk);
      await this.refresh();
    } catch (e) {
      this.showError(e);
    }
  }
}

if (!customElements.get("connections-panel")) customElements.define("connections-panel", ConnectionsPanel);

declare global {
  interface HTMLElementTagNameMap {
    "connections-panel": ConnectionsPanel;
  }
}
