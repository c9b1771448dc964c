// End-to-end: the local console in headless Chromium, against the local
// stack binary started on a free port with fresh state. Walks the journey:
// sign in, connect the sandbox OAuth platform through the popup, watch the
// initial sync reach connected, try each magic API key, upload a CSV with a
// bad row, revoke the sandbox grant and see the disconnected badge and the
// notification, reconnect from the notification. Screenshots of each main
// screen go to target/e2e-screenshots/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const shots = join(root, "target", "e2e-screenshots");
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
  return page.locator(`tr:has(td:text-is("${platform}"))`).first();
}

test("the whole journey in a real browser", { timeout: 240_000 }, async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(base + "/");
  await page.click("#signin-button");
  await page.waitForSelector("#connect-sandbox_oauth");
  for (const group of ["OAuth", "API key", "File upload"]) {
    assert.ok(await page.locator(`h3:text-is("${group}")`).count(), group);
  }
  assert.match(await page.locator('[data-platform="shopify"]').innerText(), /Needs: .*Orders/);
  await page.screenshot({ path: join(shots, "01-catalog.png"), fullPage: true });

  // OAuth through the popup and the postMessage contract.
  await approveInPopup(context, () => page.click("#connect-sandbox_oauth"), "acct_demo");
  await page.waitForFunction(() => document.querySelector("#connect-message").textContent.startsWith("Connected"));
  await row(page, "sandbox_oauth").locator(".badge.connected").waitFor({ timeout: 60_000 });
  assert.match(await row(page, "sandbox_oauth").locator(".progress").innerText(), /100%/);
  // Its daily ad spend (the sandbox's report) arrives in the spend table, newest day first.
  await page.locator("#spend tbody tr[data-date]").first().waitFor({ timeout: 30_000 });
  assert.equal(await page.locator("#spend tbody tr[data-date]").count(), 14);
  assert.match(await page.locator("#spend tbody tr[data-date]").first().innerText(), /EUR/);
  // Freshness, the next scheduled sync and the run history.
  await page.waitForFunction(() => [...document.querySelectorAll("#connections td.next-sync")].some((td) => td.textContent));
  await row(page, "sandbox_oauth").locator("button.history").click();
  await page.locator('#runs tr[data-outcome="succeeded"]').first().waitFor();
  assert.match(await page.locator("#runs").innerText(), /initial/);
  await page.screenshot({ path: join(shots, "02-connected.png"), fullPage: true });

  // Each magic key's outcome, then a good one.
  await page.click("#connect-sandbox_api_key");
  for (const [key, code] of [["sandbox-invalid-e2e", "api_key_invalid"], ["sandbox-scope-e2e", "api_key_insufficient_scope"], ["sandbox-expired-e2e", "api_key_expired"], ["sandbox-down-e2e", "platform_unavailable"], ["sandbox-ratelimit-e2e", "rate_limited"]]) {
    await page.fill("#key-api_key", key);
    await page.click("#apikey-form button[type=submit]");
    await page.waitForFunction((c) => document.querySelector("#apikey-error").textContent.startsWith(c), code);
  }
  await page.screenshot({ path: join(shots, "03-api-key-error.png"), fullPage: true });
  await page.fill("#key-api_key", "sandbox-valid-e2e");
  await page.click("#apikey-form button[type=submit]");
  await row(page, "sandbox_api_key").waitFor();

  // A CSV with a bad row: the row error shows; nothing is imported.
  await page.click("#connect-custom_costs");
  const csv = join(dataDir, "costs.csv");
  writeFileSync(csv, "date,category,amount,currency\n2026-11-01,shipping,12.50,EUR\n2026-11-02,tools,1,50,EUR\n");
  await page.setInputFiles("#upload-file", csv);
  await page.click("#upload-form button[type=submit]");
  await page.waitForSelector("#upload-errors li");
  assert.match(await page.locator("#upload-errors").innerText(), /Line 3.*ragged_row|Line 3/);
  assert.match(await page.locator("#upload-result").innerText(), /invalid_rows/);
  await page.screenshot({ path: join(shots, "04-upload-error.png"), fullPage: true });

  // The user revokes the app on the platform; the sweep notices.
  const revoked = await (await fetch(base + "/sandbox/control/revoke?account=acct_demo", { method: "POST" })).json();
  assert.equal(revoked.revoked, 1);
  await row(page, "sandbox_oauth").locator(".badge.disconnected").waitFor({ timeout: 150_000 });
  await page.check("#only-disconnected");
  await page.waitForFunction(() => {
    const rows = document.querySelectorAll("#connections tbody tr");
    return rows.length === 1 && rows[0].dataset.state === "disconnected";
  });
  await page.click("#bell");
  await page.locator("#notifications button.reconnect").first().waitFor();
  await page.screenshot({ path: join(shots, "05-disconnected-notification.png"), fullPage: true });

  // Reconnect from the notification: connected again.
  await page.uncheck("#only-disconnected");
  await page.waitForFunction(() => document.querySelectorAll("#connections tbody tr").length === 3);
  await approveInPopup(context, () => page.locator("#notifications button.reconnect").first().click(), "acct_demo");
  await row(page, "sandbox_oauth").locator(".badge.connected").waitFor({ timeout: 60_000 });
  assert.match(await page.locator("#authorizations").innerText(), /Sandbox \(OAuth 2\.0\).*connected/);
  await page.screenshot({ path: join(shots, "06-reconnected.png"), fullPage: true });

  // OAuth 1.0a through the same popup: the sandbox checks every signature.
  await approveInPopup(context, () => page.click("#connect-sandbox_oauth1"), "acct_one");
  await row(page, "sandbox_oauth1").locator(".badge.connected").waitFor({ timeout: 60_000 });
  assert.match(await page.locator("#authorizations").innerText(), /Sandbox \(OAuth 1\.0a\).*connected/);
  await page.screenshot({ path: join(shots, "07-oauth1-connected.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});
