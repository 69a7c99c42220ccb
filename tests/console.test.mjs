// The console in a real browser (Debian's chromium driven by playwright-core): it loads, the
// table fills, cursor paging works, a signed webhook sent meanwhile shows up after a refresh
// and, through the live feed, without one,
// charts and cache statistics render, and the page's own requests name their tier. A
// screenshot is kept in test-results/console.png.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { ROOT, consoleWithDevToken } from "../scripts/runtime.mjs";
import { TEST_VARS, insertCall, spawnApp } from "./support/app.mjs";
import { standardHeaders } from "./support/signers.mjs";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const T0 = Date.parse("2026-11-20T00:00:00Z");
let app, browser, page, assetsDir;

before(async () => {
  assetsDir = consoleWithDevToken(mkdtempSync(join(tmpdir(), "console-")), TEST_VARS.JWT_SECRET, "ada");
  app = await spawnApp({ assets: assetsDir });
  for (let i = 0; i < 45; i++) {
    await insertCall(app, {
      user: "ada",
      id: `CAcon${String(i).padStart(2, "0")}`,
      startedAt: T0 + i * 60_000,
      status: i % 4 === 0 ? "no-answer" : "completed",
      analysis: i % 3 === 0 ? { intent: ["billing", "support", "sales"][i % 9 === 0 ? 0 : i % 2], confidence: 0.8 } : undefined,
      enrichment: i % 2 === 0 ? { callerName: `Caller ${i}` } : undefined,
      recording: i % 4 !== 0,
    });
  }
  await insertCall(app, { user: "bob", id: "CAbobonly", startedAt: T0 + 3_600_000 * 24 });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
});

after(async () => {
  await browser?.close();
  await app?.close();
  rmSync(assetsDir, { recursive: true, force: true });
});

const firstCallId = () => page.locator("#calls tbody tr").first().getAttribute("data-call-id");

test("the page loads at / and offers the local dev token", async () => {
  const res = await page.goto(`${app.url}/`);
  assert.equal(res.status(), 200);
  assert.equal(await page.title(), "Calls and cache console");
  await page.getByRole("button", { name: /Use the local dev token \(ada\)/ }).waitFor();
  assert.equal(await page.getByLabel("Bearer token (JWT)").count(), 1, "the token field is labelled");
});

test("the table fills with the user's calls, newest first, and only theirs", async () => {
  await page.getByRole("button", { name: /Use the local dev token/ }).click();
  await page.locator("#calls tbody tr").nth(19).waitFor();
  assert.equal(await page.locator("#calls tbody tr").count(), 20);
  assert.equal(await firstCallId(), "CAcon44");
  assert.equal(await page.locator("#calls tbody tr[data-call-id='CAbobonly']").count(), 0);
  const first = await page.locator("#calls tbody tr").first().innerText();
  assert.match(first, /no-answer\tinbound\t42 s/);
  assert.ok(await page.getByRole("link", { name: /Recording of call/ }).count() > 0);
});

test("cursor paging walks forward and back with the keyboard", async () => {
  await page.getByRole("button", { name: "Next page" }).focus();
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => document.querySelector("#page-label").textContent === "Page 2");
  assert.equal(await firstCallId(), "CAcon24");
  await page.getByRole("button", { name: "Next page" }).click();
  await page.waitForFunction(() => document.querySelector("#page-label").textContent === "Page 3");
  assert.equal(await page.locator("#calls tbody tr").count(), 5);
  assert.equal(await page.getByRole("button", { name: "Next page" }).isDisabled(), true);
  await page.getByRole("button", { name: "Previous page" }).click();
  await page.waitForFunction(() => document.querySelector("#page-label").textContent === "Page 2");
  assert.equal(await firstCallId(), "CAcon24");
});

test("charts and cache statistics render, and each request names its tier", async () => {
  const bars = await page.locator("#intent-chart rect").count();
  assert.ok(bars >= 2, `${bars} intent bars`);
  assert.match(await page.locator("#answered-chart title").textContent(), /Answered rate: \d+ %/);
  assert.match(await page.locator("#cache-stats").innerText(), /Hit rate/);
  const tiers = await page.locator("#requests tbody tr td:nth-child(3)").allInnerTexts();
  assert.ok(tiers.length >= 3);
  assert.ok(tiers.every((t) => ["MISS", "HIT-MEMORY", "HIT-KV", "STALE", "BYPASS", "—"].includes(t)), tiers.join(","));
});

test("a webhook sent meanwhile shows up after a refresh", async () => {
  const body = JSON.stringify({ type: "call.upserted", data: { userId: "ada", id: "CAfromhook", status: "completed", durationSeconds: 61, startedAt: "2026-11-21T12:00:00Z" } });
  const res = await app.request("POST", "/webhooks/events", { headers: { "content-type": "application/json", ...standardHeaders(app.vars.WEBHOOK_SECRET, "msg_console", body) }, body });
  assert.equal(res.status, 200);
  await page.getByRole("button", { name: "Previous page" }).click();
  await page.getByRole("button", { name: "Refresh" }).click();
  await page.waitForFunction(() => document.querySelector("#calls tbody tr")?.dataset.callId === "CAfromhook");
  assert.match(await page.locator("#calls tbody tr").first().innerText(), /61 s/);
  mkdirSync(join(ROOT, "test-results"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "test-results/console.png"), fullPage: true });
});

test("through the live feed, a signed webhook's call appears in the table and the charts without a reload", async () => {
  await page.waitForFunction(() => document.querySelector("#live").dataset.state === "live");
  const totalBefore = await page.locator("#answered-chart title").textContent();
  const body = JSON.stringify({ type: "call.upserted", data: { userId: "ada", id: "CAlivehook", status: "completed", durationSeconds: 17, startedAt: "2026-11-22T12:00:00Z" } });
  const res = await app.request("POST", "/webhooks/events", { headers: { "content-type": "application/json", ...standardHeaders(app.vars.WEBHOOK_SECRET, "msg_console_live", body) }, body });
  assert.equal(res.status, 200);
  await page.waitForFunction(() => document.querySelector("#calls tbody tr")?.dataset.callId === "CAlivehook", null, { timeout: 3000 });
  assert.match(await page.locator("#live").textContent(), /changed CAlivehook/);
  await page.waitForFunction((before) => document.querySelector("#answered-chart title").textContent !== before, totalBefore, { timeout: 3000 });
  const [, total] = (await page.locator("#answered-chart title").textContent()).match(/of (\d+) calls/);
  assert.equal(Number(total), 47, "45 seeded, one by refresh, one live");
  const requests = await page.locator("#requests tbody tr td:first-child").allInnerTexts();
  assert.ok(requests.includes("/api/live/tickets"), requests.join(","));
});

test("without the live feed the console says so and polls", async () => {
  const plain = await spawnApp({ assets: assetsDir, live: false });
  const other = await browser.newPage();
  try {
    await other.goto(`${plain.url}/`);
    await other.getByRole("button", { name: /Use the local dev token/ }).click();
    await other.waitForFunction(() => document.querySelector("#live").dataset.state === "polling");
    assert.match(await other.locator("#live").textContent(), /polling every 10 s/);
  } finally {
    await other.close();
    await plain.close();
  }
});

test("a bad token is reported on the page, not thrown", async () => {
  await page.getByLabel("Bearer token (JWT)").fill("not-a-token");
  await page.getByRole("button", { name: "Load", exact: true }).click();
  await page.waitForFunction(() => document.querySelector("#status").classList.contains("error"));
  assert.match(await page.locator("#status").textContent(), /JWT/);
});
