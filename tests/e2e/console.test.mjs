// End-to-end: the local console (a sign-in and the drop-in
// <connections-panel> of frontend/) in headless Chromium, against the local
// stack binary started on a free port with fresh state. Walks the journey:
// sign in, connect the sandbox OAuth platform through the popup, watch the
// initial sync reach connected, try each magic API key, upload a CSV with a
// bad row, revoke the sandbox grant and see the disconnected badge and the
// notification, reconnect from the notification. Holds the panel to its
// quality bars (axe-core: no serious or critical violation; no horizontal
// scroll at 390 px; focus kept across refreshes; a human label for every
// status) and drives the SDK's own flows (blocked and closed popups, a
// refusal, a timeout, messages from elsewhere, typed API errors).
// Then the alert emails: the local outbox, the disconnection as its reader
// sees it, its one-click unsubscribe, and every kind the Rust tests rendered.
// Screenshots of each main screen and email, at 1280 and 390 px, go to
// target/e2e-screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, readFileSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const shots = join(root, "target", "e2e-screenshots");
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const binary = process.env.LOCAL_STACK_BIN || join(root, "target", "debug", "local-stack");
let stack, browser, base, dataDir;

function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

before(async () => {
  mkdirSync(shots, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), "console-e2e-"));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  stack = spawn(binary, [], {
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, SWEEP_INTERVAL_SECONDS: "2", DIGEST_WINDOW_SECONDS: "0", RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  // Ready when it prints where it listens.
  await new Promise((resolve, reject) => {
    stack.stdout.on("data", (d) => { if (String(d).includes("listening on")) resolve(); });
    stack.on("exit", (code) => reject(new Error(`local stack exited with ${code}`)));
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  stack?.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

async function approveInPopup(context, click, account) {
  const [popup] = await Promise.all([context.waitForEvent("page"), click()]);
  await popup.waitForSelector("#approve");
  if (account) await popup.fill("#account", account);
  await Promise.all([popup.waitForEvent("close"), popup.click("#approve")]);
}

function row(page, platform) {
  return page.locator(`#connections tr[data-platform="${platform}"]`).first();
}

/** axe-core on the whole page (the panel's shadow DOM included): serious and critical violations. */
async function axeViolations(page) {
  // Evaluated through the DevTools protocol: the page's CSP (no inline scripts) stays in force.
  if (!(await page.evaluate(() => "axe" in window))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => (await window.axe.run(document, { resultTypes: ["violations"] })).violations);
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
}

/** The quality bars at one width: axe, no horizontal scroll, a human label on every status, and a screenshot. */
async function bars(page, name) {
  assert.deepEqual(await axeViolations(page), [], `${name}: axe`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${name}: ${overflow} px of horizontal scroll`);
  for (const label of await page.locator("#connections .badge").allInnerTexts()) {
    assert.match(label, /^[A-Z][^_]*$/, `${name}: status label ${JSON.stringify(label)}`);
  }
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function signIn(page, role = "admin") {
  await page.goto(base + "/");
  await page.selectOption("select[name=role]", role);
  await page.click("#signin-button");
  await page.locator("#connect-sandbox_oauth").waitFor();
}

test("the whole journey in a real browser", { timeout: 240_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/");
  assert.deepEqual(await axeViolations(page), [], "the sign-in page");
  assert.equal(await page.locator("#panel").isVisible(), false);
  await signIn(page);
  // The catalog: search, and the role each platform needs.
  assert.match(await page.locator('[data-platform="shopify"]').innerText(), /Needs: .*Orders/);
  await page.fill("#search", "klav");
  assert.deepEqual(await page.locator(".platform strong").allInnerTexts(), ["Klaviyo"]);
  await page.fill("#search", "");
  assert.ok((await page.locator(".platform").count()) >= 16);
  await page.screenshot({ path: join(shots, "01-catalog.png"), fullPage: true });

  // OAuth through the popup and the postMessage contract.
  await approveInPopup(context, () => page.click("#connect-sandbox_oauth"), "acct_demo");
  await page.locator("#message", { hasText: "Connected" }).waitFor();
  await row(page, "sandbox_oauth").locator('.badge[data-state="connected"]').waitFor({ timeout: 60_000 });
  assert.match(await row(page, "sandbox_oauth").locator(".progress").innerText(), /100%/);
  // Its daily ad spend (the sandbox's report) arrives in the spend table, newest day first.
  await page.locator("#spend tbody tr[data-date]").first().waitFor({ timeout: 30_000 });
  assert.equal(await page.locator("#spend tbody tr[data-date]").count(), 14);
  assert.match(await page.locator("#spend tbody tr[data-date]").first().innerText(), /EUR/);
  // Freshness, the next scheduled sync and the run history.
  assert.notEqual(await row(page, "sandbox_oauth").locator("td.next-sync").innerText(), "—");
  await row(page, "sandbox_oauth").locator("button.history").click();
  await page.locator('#runs tr[data-outcome="succeeded"]').first().waitFor();
  assert.match(await page.locator("#runs").innerText(), /initial/);
  await page.screenshot({ path: join(shots, "02-connected.png"), fullPage: true });

  // Each magic key's outcome, then a good one.
  await page.click("#connect-sandbox_api_key");
  for (const [key, code] of [["sandbox-invalid-e2e", "api_key_invalid"], ["sandbox-scope-e2e", "api_key_insufficient_scope"], ["sandbox-expired-e2e", "api_key_expired"], ["sandbox-down-e2e", "platform_unavailable"], ["sandbox-ratelimit-e2e", "rate_limited"]]) {
    await page.fill("#key-api_key", key);
    await page.click("#apikey-form button[type=submit]");
    await page.locator("#apikey-error", { hasText: new RegExp(`^${code}:`) }).waitFor();
  }
  await page.screenshot({ path: join(shots, "03-api-key-error.png"), fullPage: true });
  await page.fill("#key-api_key", "sandbox-valid-e2e");
  await page.click("#apikey-form button[type=submit]");
  await row(page, "sandbox_api_key").waitFor();

  // A CSV with a bad row: the row error shows; nothing is imported. The
  // source waiting for its first file says so.
  await page.click("#connect-custom_costs");
  await row(page, "custom_costs").locator(".badge", { hasText: "Waiting for the first file" }).waitFor();
  const csv = join(dataDir, "costs.csv");
  writeFileSync(csv, "date,category,amount,currency\n2026-11-01,shipping,12.50,EUR\n2026-11-02,tools,1,50,EUR\n");
  await page.setInputFiles("#upload-file", csv);
  await page.click("#upload-form button[type=submit]");
  await page.locator("#upload-errors li").first().waitFor();
  assert.match(await page.locator("#upload-errors").innerText(), /Line 3/);
  assert.match(await page.locator("#upload-result").innerText(), /invalid_rows/);
  await page.screenshot({ path: join(shots, "04-upload-error.png"), fullPage: true });

  // Focus stays on a row's button across refreshes (rows are updated in place).
  const history = row(page, "sandbox_api_key").locator("button.history");
  await history.focus();
  for (let i = 0; i < 3; i++) await page.evaluate(() => document.querySelector("#panel").refresh());
  assert.equal(await page.evaluate(() => document.querySelector("#panel").shadowRoot.activeElement?.getAttribute("aria-label")), "History: Sandbox (API key)");
  await bars(page, "08-panel-1280");

  // The key is deleted on the platform: Sync now disconnects the source,
  // and its notification offers Replace key, which reconnects it.
  await (await fetch(base + "/sandbox/control/revoke-key?key=sandbox-valid-e2e", { method: "POST" })).json();
  await row(page, "sandbox_api_key").locator("button.sync").click();
  await row(page, "sandbox_api_key").locator('.badge[data-state="disconnected"]').waitFor({ timeout: 60_000 });
  assert.match(await row(page, "sandbox_api_key").locator(".badge").innerText(), /^Disconnected · key rejected/);
  await page.click("#bell");
  await page.locator("#notifications button.replace-key").first().click();
  await page.fill("#key-api_key", "sandbox-valid-e2e-new");
  await page.click("#apikey-form button[type=submit]");
  await page.locator("#message", { hasText: "Replaced the key" }).waitFor();
  await row(page, "sandbox_api_key").locator('.badge[data-state="connected"]').waitFor({ timeout: 60_000 });
  await page.click("#bell");

  // The user revokes the app on the platform; the sweep notices.
  const revoked = await (await fetch(base + "/sandbox/control/revoke?account=acct_demo", { method: "POST" })).json();
  assert.equal(revoked.revoked, 1);
  await row(page, "sandbox_oauth").locator('.badge[data-state="disconnected"]').waitFor({ timeout: 150_000 });
  assert.match(await row(page, "sandbox_oauth").locator(".badge").innerText(), /^Disconnected · /);
  await page.check("#only-disconnected");
  await page.waitForFunction(() => {
    const rows = document.querySelector("#panel").shadowRoot.querySelectorAll("#connections tbody tr");
    return rows.length === 1 && rows[0].dataset.state === "disconnected";
  });
  assert.equal(await page.locator("#bell .count").isVisible(), true);
  await page.click("#bell");
  await page.locator("#notifications button.reconnect").first().waitFor();
  await page.screenshot({ path: join(shots, "05-disconnected-notification.png"), fullPage: true });

  // Reconnect from the notification: connected again.
  await page.uncheck("#only-disconnected");
  await page.waitForFunction(() => document.querySelector("#panel").shadowRoot.querySelectorAll("#connections tbody tr").length === 3);
  await approveInPopup(context, () => page.locator("#notifications button.reconnect").first().click(), "acct_demo");
  await row(page, "sandbox_oauth").locator('.badge[data-state="connected"]').waitFor({ timeout: 60_000 });
  assert.match(await page.locator("#authorizations").innerText(), /Sandbox \(OAuth 2\.0\).*Connected/);
  await page.screenshot({ path: join(shots, "06-reconnected.png"), fullPage: true });

  // OAuth 1.0a through the same popup: the sandbox checks every signature.
  await approveInPopup(context, () => page.click("#connect-sandbox_oauth1"), "acct_one");
  await row(page, "sandbox_oauth1").locator('.badge[data-state="connected"]').waitFor({ timeout: 60_000 });
  assert.match(await page.locator("#authorizations").innerText(), /Sandbox \(OAuth 1\.0a\).*Connected/);
  await page.screenshot({ path: join(shots, "07-oauth1-connected.png"), fullPage: true });

  // A refusal on the platform: a clear error with its action and a retry.
  const [popup] = await Promise.all([context.waitForEvent("page"), page.click("#connect-sandbox_oauth")]);
  await popup.waitForSelector("#deny");
  await Promise.all([popup.waitForEvent("close"), popup.click("#deny")]);
  await page.locator('#alert [data-code="permissions_denied"]').waitFor();
  assert.match(await page.locator("#alert").innerText(), /declined.*Try again/s);
  await approveInPopup(context, () => page.click("#alert button.retry"), "acct_demo");
  await page.locator("#message", { hasText: "Connected" }).waitFor();

  // A second data source on the same grant, for a client, without signing in
  // again; then the grant is renamed in place.
  const grant = page.locator("#authorizations li", { hasText: "Sandbox (OAuth 2.0)" }).first();
  await grant.locator("button.add-source").click();
  await page.fill("#source-name", "Acme orders");
  await page.fill("#source-client", "Acme Shop");
  await page.click("#source-form button[type=submit]");
  await page.locator("#connections tr", { hasText: "Acme orders" }).locator("td", { hasText: "Acme Shop" }).waitFor();
  await grant.locator("button.rename").click();
  await page.fill("#authorization-name", "Demo store grant");
  await page.click("#rename-form button[type=submit]");
  await page.locator("#authorizations li", { hasText: "Demo store grant" }).locator("text=Acme orders (Acme Shop)").waitFor();

  // On a phone: the same bars.
  await page.setViewportSize({ width: 390, height: 844 });
  if ((await page.getAttribute("#bell", "aria-expanded")) === "true") await page.click("#bell");
  await bars(page, "09-panel-390");
  await page.click("#bell");
  await page.locator("#tray").waitFor();
  await bars(page, "10-notifications-390");
  assert.deepEqual(errors, []);
  await context.close();
});

test("alert emails: the local outbox, the reader's view at both widths, one-click unsubscribe", { timeout: 60_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // The journey above disconnected the sandbox grant and reconnected it:
  // the signed-in admin got the disconnection and the recovery notice.
  await page.goto(base + "/local/outbox");
  assert.deepEqual(await axeViolations(page), [], "the outbox page");
  const subjects = await page.locator("tbody td:nth-child(3)").allInnerTexts();
  assert.ok(subjects.some((s) => /^Sandbox \(OAuth 2\.0\) is disconnected$/.test(s)), subjects.join("\n"));
  assert.ok(subjects.some((s) => /is connected again$/.test(s)), subjects.join("\n"));
  await page.screenshot({ path: join(shots, "11-outbox.png"), fullPage: true });

  // The disconnection as its reader sees it: names, one Reconnect button
  // with the ids, readable on a phone.
  const link = page.locator("tbody td:nth-child(3) a", { hasText: /^Sandbox \(OAuth 2\.0\) is disconnected$/ }).first();
  const htmlPath = await link.getAttribute("href");
  await link.click();
  const button = page.locator("a", { hasText: /^Reconnect$/ });
  assert.equal(await button.count(), 1, "one button");
  const emailReconnect = await button.getAttribute("href");
  assert.match(emailReconnect, /\/reconnect\?connection_id=conn_[0-9a-f]+&authorization_id=auth_[0-9a-f]+$/);
  assert.match(await page.innerText("body"), /Account\s+Sandbox account acct_demo/);
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 900 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the email at ${width} px: ${overflow} px of horizontal scroll`);
    await page.screenshot({ path: join(shots, `12-email-disconnected-${width}.png`), fullPage: true });
  }

  // The message's own header carries the one-click link (RFC 8058); the
  // mailbox's POST turns disconnection emails off for this member.
  const eml = await (await fetch(base + htmlPath.replace(/\.html$/, ".eml"))).text();
  assert.match(eml, /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r$/m);
  const unsubscribe = eml.match(/^List-Unsubscribe: <([^>]+)>\r$/m)[1];
  const asked = await fetch(unsubscribe);
  assert.equal(asked.status, 200);
  assert.match(await asked.text(), /Stop disconnection alerts by email/);
  const done = await fetch(unsubscribe, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click" });
  assert.equal(done.status, 200);
  assert.match(await done.text(), /gets no more disconnection alerts by email/);

  // The footer's "Email preferences" page: the unsubscribe shows there, and
  // the member turns it back on and picks a time zone.
  await signIn(page);
  await page.goto(base + "/settings/email");
  await page.locator("#preferences-form").waitFor();
  assert.equal(await page.locator("#email-disconnected").isChecked(), false, "unsubscribed by the link");
  assert.equal(await page.locator("#email-recovered").isChecked(), true);
  assert.deepEqual(await axeViolations(page), [], "email preferences");
  await page.check("#email-disconnected");
  await page.selectOption("#time-zone", "Europe/Paris");
  await page.click("#preferences-form button[type=submit]");
  await page.locator("#message", { hasText: "Saved your email preferences" }).waitFor();
  const me = await page.evaluate(async () => {
    const { Connections } = await import("/sdk.js");
    return new Connections({ baseUrl: location.origin, token: sessionStorage.getItem("token") }).me();
  });
  assert.deepEqual([me.email_opt_out, me.time_zone], [[], "Europe/Paris"]);

  // The email's buttons lead into the panel: See the sync opens the history;
  // Reconnect finds the data source connected again by now.
  const reconnectHref = new URL(emailReconnect);
  const connectionId = reconnectHref.searchParams.get("connection_id");
  await page.goto(`${base}/sync?connection_id=${connectionId}`);
  await page.locator("#runs").waitFor();
  await page.goto(`${base}${reconnectHref.pathname}${reconnectHref.search}`);
  await page.locator("#message", { hasText: "is connected: nothing to do" }).waitFor();

  // Every kind the Rust tests rendered (target/emails), at desktop and phone width.
  const rendered = join(root, "target", "emails");
  const files = existsSync(rendered) ? readdirSync(rendered).filter((f) => f.endsWith(".html")).sort() : [];
  assert.ok(files.length >= 6 || !process.env.CI, `rendered emails in ${rendered}: ${files}`);
  for (const file of files) {
    await page.setContent(readFileSync(join(rendered, file), "utf8"));
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: 900 });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${file} at ${width} px: ${overflow} px of horizontal scroll`);
      await page.screenshot({ path: join(shots, `email-${file.replace(/\.html$/, "")}-${width}.png`), fullPage: true });
    }
  }
  await context.close();
});

test("the SDK's flows and errors", { timeout: 60_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await signIn(page);
  // Typed API errors: code, message and action.
  const invalid = await page.evaluate(async () => {
    const { Connections } = await import("/sdk.js");
    const sdk = new Connections({ baseUrl: location.origin, token: sessionStorage.getItem("token") });
    try {
      await sdk.connectApiKey("sandbox_api_key", { api_key: "sandbox-invalid-sdk" });
    } catch (e) {
      return { name: e.name, code: e.code, status: e.status, message: e.message, action: e.action };
    }
  });
  assert.equal(invalid.name, "ConnectionsError");
  assert.equal(invalid.code, "api_key_invalid");
  assert.ok(invalid.status >= 400 && invalid.message && invalid.action, JSON.stringify(invalid));
  const unauthenticated = await page.evaluate(async () => {
    const { Connections } = await import("/sdk.js");
    return new Connections({ baseUrl: location.origin, token: "nope" }).connections().catch((e) => e.code);
  });
  assert.equal(unauthenticated, "unauthenticated");

  // A blocked popup: a clear error, nothing started.
  const blocked = await page.evaluate(async () => {
    const { Connections } = await import("/sdk.js");
    const sdk = new Connections({ baseUrl: location.origin, token: sessionStorage.getItem("token") });
    window.open = () => null;
    return sdk.connect("sandbox_oauth").catch((e) => [e.code, e.action]);
  });
  assert.equal(blocked[0], "popup_blocked");
  assert.match(blocked[1], /pop-ups/);

  // A message from anywhere but the popup is ignored; closing the popup ends the wait.
  await page.reload();
  await page.locator("#connect-sandbox_oauth").waitFor();
  await page.evaluate(async () => {
    const { Connections } = await import("/sdk.js");
    const sdk = new Connections({ baseUrl: location.origin, token: sessionStorage.getItem("token") });
    window.flow = sdk.connect("sandbox_oauth").then((r) => `resolved ${r.status}`, (e) => e.code);
    window.postMessage({ type: "connections:oauth", status: "connected", connection_id: "conn_forged" }, location.origin);
  });
  const popup = context.pages().find((p) => p !== page) ?? (await context.waitForEvent("page"));
  await popup.waitForSelector("#approve");
  await popup.close();
  assert.equal(await page.evaluate(() => window.flow), "popup_closed");

  // A popup left open past the timeout.
  const timedOut = await page.evaluate(async () => {
    const { Connections } = await import("/sdk.js");
    const sdk = new Connections({ baseUrl: location.origin, token: sessionStorage.getItem("token"), connectTimeoutMs: 300 });
    return sdk.connect("sandbox_oauth").catch((e) => e.code);
  });
  assert.equal(timedOut, "timeout");

  // Sign-in by redirect (connect-mode="redirect", as on a phone): a refusal
  // comes back as an error with its action, then an approval connects.
  await page.reload();
  await page.locator("#connect-sandbox_oauth").waitFor();
  await page.evaluate(() => document.querySelector("#panel").setAttribute("connect-mode", "redirect"));
  await page.click("#connect-sandbox_oauth");
  await page.waitForSelector("#deny");
  await page.click("#deny");
  await page.locator('#alert [data-code="permissions_denied"]').waitFor();
  assert.match(await page.locator("#alert").innerText(), /declined.*start/is);
  assert.equal(new URL(page.url()).search, "", "the outcome is read once and removed from the address");
  await page.evaluate(() => document.querySelector("#panel").setAttribute("connect-mode", "redirect"));
  await page.click("#connect-sandbox_oauth");
  await page.waitForSelector("#approve");
  await page.click("#approve");
  await page.locator("#message", { hasText: "Connected" }).waitFor();
  // A blocked popup in the panel offers to continue in this window.
  await page.evaluate(() => { window.open = () => null; });
  await page.click("#connect-sandbox_oauth");
  await page.locator('#alert [data-code="popup_blocked"]').waitFor();
  await page.click("#alert button.retry");
  await page.waitForSelector("#approve");
  await page.click("#approve");
  await page.locator("#message", { hasText: "Connected" }).waitFor();

  // An upload with progress, through the SDK alone.
  const uploaded = await page.evaluate(async () => {
    const { Connections } = await import("/sdk.js");
    const sdk = new Connections({ baseUrl: location.origin, token: sessionStorage.getItem("token") });
    const c = await sdk.createFileConnection("custom_costs", "SDK costs");
    const seen = [];
    const file = new Blob(["date,category,amount,currency\n2026-11-01,shipping,12.50,EUR\n"], { type: "text/csv" });
    const up = await sdk.upload(c, file, { onProgress: (done, total) => seen.push([done, total]) });
    return { state: up.state, rows: up.valid_rows, last: seen.at(-1), size: file.size };
  });
  assert.equal(uploaded.state, "ingested");
  assert.equal(uploaded.rows, 1);
  assert.deepEqual(uploaded.last, [uploaded.size, uploaded.size]);

  // Over 5 MB: straight to storage through a presigned URL, processed as it lands.
  const large = await page.evaluate(async () => {
    const { Connections, DIRECT_UPLOAD_MAX } = await import("/sdk.js");
    const sdk = new Connections({ baseUrl: location.origin, token: sessionStorage.getItem("token") });
    const c = await sdk.createFileConnection("custom_costs", "SDK large costs");
    const row = "2026-11-01,shipping and handling for the autumn catalogue (warehouse A),12.50,EUR\n";
    const rows = Math.ceil((DIRECT_UPLOAD_MAX + 1) / row.length);
    const file = new Blob(["date,category,amount,currency\n", row.repeat(rows)], { type: "text/csv" });
    let sent = 0;
    const up = await sdk.upload(c, file, { pollMs: 50, onProgress: (done) => { sent = done; } });
    return { state: up.state, source: up.source, rows: up.valid_rows, expected: rows, sent, size: file.size };
  });
  assert.equal(large.source, "presigned");
  assert.equal(large.state, "ingested");
  assert.equal(large.rows, large.expected);
  assert.equal(large.sent, large.size);
  await context.close();
});
