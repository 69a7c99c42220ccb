// The console in a real browser (Debian's chromium driven by playwright-core): it loads, the
// table fills, cursor paging works, a signed webhook sent meanwhile shows up after a refresh
// and, through the live feed, without one,
// charts and cache statistics render, and the page's own requests name their tier; filters and a
// date range narrow the table, and the range drives a daily chart. Screenshots are kept in
// test-results/console.png and test-results/console-filtered.png.
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

const rowIds = (p) => p.locator("#calls tbody tr[data-call-id]").evaluateAll((rows) => rows.map((r) => r.dataset.callId));

/** Waits until the table lists `ids` (in order), then asserts it, so a mismatch shows a diff. */
async function expectRows(p, ids) {
  await p
    .waitForFunction((want) => [...document.querySelectorAll("#calls tbody tr[data-call-id]")].map((r) => r.dataset.callId).join() === want, ids.join(), { timeout: 5000 })
    .catch(() => {});
  assert.deepEqual(await rowIds(p), ids);
}

let hookSeq = 0;
/** A signed Standard Webhooks event, so the call takes the real write path (direction, analysis, day aggregates). */
async function sendEvent(target, type, data) {
  const body = JSON.stringify({ type, data });
  const headers = { "content-type": "application/json", ...standardHeaders(target.vars.WEBHOOK_SECRET, `msg_filters_${++hookSeq}`, body) };
  const res = await target.request("POST", "/webhooks/events", { headers, body });
  assert.equal(res.status, 200, res.text);
}

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

test("status, direction, intent and a date range filter the table, and the range draws one bar per day in the daily chart", async () => {
  // Its own app, so the calls above do not count. Fixed days, typed into the date inputs,
  // keep the test the same whatever today is; the edges sit on the range's first and last
  // instants: the range is 2026-03-02 to 2026-03-03 inclusive, sent as to=2026-03-04.
  const seeded = [
    ["CAmar01", "2026-03-01T23:59:59Z", "failed", "outbound"], // the day before the range
    ["CAmar02a", "2026-03-02T00:00:00Z", "failed", "inbound"],
    ["CAmar02b", "2026-03-02T11:00:00Z", "completed", "outbound", "billing"],
    ["CAmar02c", "2026-03-02T15:00:00Z", "failed", "outbound"],
    ["CAmar03a", "2026-03-03T10:00:00Z", "failed", "outbound"],
    ["CAmar03b", "2026-03-03T23:59:59Z", "completed", "inbound", "billing"],
    ["CAmar04", "2026-03-04T00:00:00Z", "failed", "outbound"], // the exclusive `to` itself
  ];
  const filtered = await spawnApp({ assets: assetsDir });
  const other = await browser.newPage({ viewport: { width: 1280, height: 1400 } });
  try {
    for (const [id, startedAt, status, direction, intent] of seeded) {
      await sendEvent(filtered, "call.upserted", { userId: "ada", id, status, direction, startedAt, ...(status === "completed" ? { durationSeconds: 30 } : {}) });
      if (intent) await sendEvent(filtered, "call.analysis.completed", { userId: "ada", callId: id, intent, confidence: 0.9 });
    }
    await other.goto(`${filtered.url}/`);
    await other.getByRole("button", { name: /Use the local dev token/ }).click();
    await expectRows(other, ["CAmar04", "CAmar03b", "CAmar03a", "CAmar02c", "CAmar02b", "CAmar02a", "CAmar01"]);
    assert.equal(await other.locator("#daily-chart").isHidden(), true, "no range, no daily chart");
    assert.equal(await other.locator("#daily-empty").isVisible(), true);
    for (const label of ["failed", "completed"]) assert.equal(await other.getByRole("checkbox", { name: label, exact: true }).count(), 1);
    for (const label of ["Direction", "Intent", "From", "To (inclusive)"]) assert.equal(await other.getByLabel(label, { exact: true }).count(), 1, `${label} is labelled`);

    // Status and range: the table keeps the failed calls of the two days; the charts keep
    // every call of the two days (the summary takes the range, not the other filters).
    await other.getByRole("checkbox", { name: "failed", exact: true }).check();
    await other.getByLabel("From", { exact: true }).fill("2026-03-02");
    await other.getByLabel("To (inclusive)", { exact: true }).fill("2026-03-03");
    await other.getByRole("button", { name: "Apply filters" }).click();
    await other.waitForFunction(() => document.querySelectorAll("#daily-chart rect[data-date]").length > 0, null, { timeout: 5000 });
    await expectRows(other, ["CAmar03a", "CAmar02c", "CAmar02a"]);
    const bars = await other.locator("#daily-chart rect[data-date]").evaluateAll((rects) => rects.map((r) => [r.getAttribute("data-date"), r.getAttribute("data-calls"), r.getAttribute("data-answered")]));
    assert.deepEqual(bars, [["2026-03-02", "3", "1"], ["2026-03-03", "2", "1"]]);
    const rates = await other.locator("#daily-chart circle[data-date]").evaluateAll((dots) => dots.map((d) => [d.getAttribute("data-date"), d.getAttribute("data-rate")]));
    assert.deepEqual(rates, [["2026-03-02", "33"], ["2026-03-03", "50"]]);
    assert.equal(await other.locator("#daily-chart").isVisible(), true);
    assert.match(await other.locator("#daily-chart title").first().textContent(), /^Calls per day, 2026-03-02 to 2026-03-03: 5 calls, 2 answered/);
    assert.match(await other.locator("#answered-chart title").textContent(), /\(2 of 5 calls\)/);
    assert.match(await other.locator("#intent-chart title").textContent(), /billing 2/);
    const requests = await other.locator("#requests tbody tr td:first-child").allInnerTexts();
    assert.ok(requests.includes("/api/webhook-calls?limit=20&status=failed&from=2026-03-02&to=2026-03-04"), requests.join("\n"));
    assert.ok(requests.includes("/api/intent-analysis?from=2026-03-02&to=2026-03-04"), requests.join("\n"));
    mkdirSync(join(ROOT, "test-results"), { recursive: true });
    await other.screenshot({ path: join(ROOT, "test-results/console-filtered.png"), fullPage: true });

    await other.getByLabel("Direction", { exact: true }).selectOption("outbound");
    await other.getByRole("button", { name: "Apply filters" }).click();
    await expectRows(other, ["CAmar03a", "CAmar02c"]);

    // The intent choices come from the summary's intents.
    await other.getByRole("checkbox", { name: "failed", exact: true }).uncheck();
    await other.getByLabel("Direction", { exact: true }).selectOption({ label: "any" });
    await other.getByLabel("Intent", { exact: true }).selectOption("billing");
    await other.getByRole("button", { name: "Apply filters" }).click();
    await expectRows(other, ["CAmar03b", "CAmar02b"]);

    // A range the API refuses (over 366 days) is reported on the page, not thrown.
    await other.getByLabel("From", { exact: true }).fill("2025-01-01");
    await other.getByRole("button", { name: "Apply filters" }).click();
    await other.waitForFunction(() => document.querySelector("#status").classList.contains("error"), null, { timeout: 5000 });
    assert.match(await other.locator("#status").textContent(), /366 days/);

    // "7 days" is the seven UTC days ending today.
    await other.getByRole("button", { name: "7 days", exact: true }).click();
    await other.waitForFunction(() => document.querySelectorAll("#daily-chart rect[data-date]").length === 7, null, { timeout: 5000 });
    const from = await other.getByLabel("From", { exact: true }).inputValue();
    const through = await other.getByLabel("To (inclusive)", { exact: true }).inputValue();
    assert.equal(Date.parse(through) - Date.parse(from), 6 * 86_400_000, `${from} to ${through}`);
    assert.equal(await other.locator("#status").evaluate((el) => el.classList.contains("error")), false);

    await other.getByRole("button", { name: "Clear filters" }).click();
    await expectRows(other, ["CAmar04", "CAmar03b", "CAmar03a", "CAmar02c", "CAmar02b", "CAmar02a", "CAmar01"]);
    await other.waitForFunction(() => document.querySelectorAll("#daily-chart rect[data-date]").length === 0, null, { timeout: 5000 });
    assert.equal(await other.locator("#daily-chart").isHidden(), true);
    assert.equal(await other.getByLabel("From", { exact: true }).inputValue(), "");
    assert.equal(await other.getByRole("checkbox", { name: "failed", exact: true }).isChecked(), false);
  } finally {
    await other.close();
    await filtered.close();
  }
});

test("a bad token is reported on the page, not thrown", async () => {
  await page.getByLabel("Bearer token (JWT)").fill("not-a-token");
  await page.getByRole("button", { name: "Load", exact: true }).click();
  await page.waitForFunction(() => document.querySelector("#status").classList.contains("error"));
  assert.match(await page.locator("#status").textContent(), /JWT/);
});
