// The console: no framework, no build step. Reads the dashboard API with the pasted token and
// shows calls (cursor paging, optionally filtered), the intent summary as SVG charts (over a
// date range, with calls per day, when one is chosen), and the cache's counters,
// plus which tier served each of this page's own requests. It follows the live feed
// (/api/live): a change message makes it re-read the page and the charts with X-Min-Version,
// so what it shows is at least as new as the change; when the feed is unavailable it
// reconnects with backoff and polls meanwhile.
const PAGE_SIZE = 20;
const STATS_EVERY_MS = 5000;
const POLL_EVERY_MS = 10_000;
const BACKOFF_MS = [1000, 2000, 5000, 10_000, 30_000];
const DAY_MS = 86_400_000;
const $ = (id) => document.getElementById(id);

let token = "";
let cursors = [null]; // cursors[i] starts page i; null is the first page
let page = 0;
let statsTimer;
let minVersion = ""; // the newest version the feed announced
let live = { socket: null, attempt: 0, retryTimer: null, pollTimer: null, session: 0 };
// The applied filter. Pages read this, not the controls: a cursor must go back with the very
// parameters it came with, and the controls may have been edited since without applying.
// `through` is the last day the user chose (inclusive); the API's `to` is the day after it.
const NO_FILTER = Object.freeze({ statuses: [], direction: "", intent: "", from: "", through: "" });
let filter = NO_FILTER;
// Each read of the table (and of the charts) takes a number; an answer that is not the newest
// one's is dropped, so a slow read for an old page or filter cannot overwrite a newer one.
let callsRead = 0;
let summaryRead = 0;

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function api(path, { method = "GET" } = {}) {
  const started = performance.now();
  const headers = { Authorization: `Bearer ${token}` };
  if (minVersion && method === "GET") headers["X-Min-Version"] = minVersion;
  const res = await fetch(path, { method, headers, cache: "no-store" });
  const body = await res.json().catch(() => null);
  logRequest(path, res.status, res.headers.get("x-cache") ?? "—", performance.now() - started);
  if (!res.ok) throw new Error(body?.error?.message ?? `HTTP ${res.status}`);
  return body;
}

function logRequest(path, status, tier, ms) {
  const row = document.createElement("tr");
  for (const text of [path, String(status), tier, ms.toFixed(0)]) {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
  }
  const tbody = $("requests").tBodies[0];
  tbody.prepend(row);
  while (tbody.rows.length > 15) tbody.deleteRow(-1);
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text ?? "—";
  return td;
}

/** The UTC day `n` days after `date` (YYYY-MM-DD; n may be negative). */
function addDays(date, n) {
  return new Date(Date.parse(`${date}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}

const todayUtc = () => new Date().toISOString().slice(0, 10);

/** `name=value&…`; a list value is sent comma-separated, its commas left readable. */
function queryString(pairs) {
  const encode = (v) => (Array.isArray(v) ? v.map(encodeURIComponent).join(",") : encodeURIComponent(v));
  return pairs.map(([k, v]) => `${k}=${encode(v)}`).join("&");
}

/** The range as the API takes it: `to` is exclusive, so the day after the chosen end day. */
function rangeParams(f) {
  const pairs = [];
  if (f.from) pairs.push(["from", f.from]);
  if (f.through) pairs.push(["to", addDays(f.through, 1)]);
  return pairs;
}

/** The calls route's filter parameters, only those set; it takes either end of a range alone. */
function callFilterParams(f) {
  const pairs = [];
  if (f.statuses.length) pairs.push(["status", f.statuses]);
  if (f.direction) pairs.push(["direction", f.direction]);
  if (f.intent) pairs.push(["intent", f.intent]);
  return [...pairs, ...rangeParams(f)];
}

function callsPath(f, cursor) {
  const pairs = [["limit", PAGE_SIZE], ...callFilterParams(f)];
  if (cursor) pairs.push(["cursor", cursor]);
  return `/api/webhook-calls?${queryString(pairs)}`;
}

/** The summary takes a range only whole (both ends or neither); half a range leaves it all-time. */
const summaryRange = (f) => (f.from && f.through ? rangeParams(f) : []);

function summaryPath(f) {
  const pairs = summaryRange(f);
  return pairs.length ? `/api/intent-analysis?${queryString(pairs)}` : "/api/intent-analysis";
}

const isFiltered = (f) => Boolean(f.statuses.length || f.direction || f.intent || f.from || f.through);

/** Says a filtered page is empty; such a page may still have a next one (the server bounds a page's scan). */
function noCallsRow(hasNext) {
  const row = document.createElement("tr");
  const td = document.createElement("td");
  td.colSpan = 8;
  td.className = "empty";
  td.textContent = hasNext ? "No matching calls on this page; the next page may hold some." : "No calls match these filters.";
  row.append(td);
  return row;
}

async function loadCalls() {
  const mine = ++callsRead;
  const f = filter;
  let body;
  try {
    body = await api(callsPath(f, cursors[page]));
  } catch (e) {
    if (mine !== callsRead) return; // a newer read owns the table and the status line
    throw e;
  }
  if (mine !== callsRead) return;
  const { data, meta } = body;
  const tbody = $("calls").tBodies[0];
  tbody.replaceChildren();
  if (data.length === 0 && isFiltered(f)) tbody.append(noCallsRow(Boolean(meta.nextCursor)));
  for (const call of data) {
    const row = document.createElement("tr");
    row.dataset.callId = call.id;
    const recording = document.createElement("td");
    if (call.recording?.url) {
      const a = document.createElement("a");
      a.href = call.recording.url;
      a.textContent = "Listen";
      a.setAttribute("aria-label", `Recording of call ${call.id}`);
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      recording.append(a);
    } else recording.textContent = "—";
    row.append(
      cell(new Date(call.startedAt).toLocaleString()),
      cell(call.status),
      cell(call.direction),
      cell(call.durationSeconds == null ? null : `${call.durationSeconds} s`),
      cell(call.analysis?.intent),
      cell(call.analysis?.confidence == null ? null : `${Math.round(call.analysis.confidence * 100)} %`),
      cell(call.enrichment?.callerName || call.from || null),
      recording,
    );
    tbody.append(row);
  }
  cursors[page + 1] = meta.nextCursor;
  $("next").disabled = !meta.nextCursor;
  $("prev").disabled = page === 0;
  $("page-label").textContent = `Page ${page + 1}`;
}

const svg = (name, attrs) => {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
};

function drawIntents(distribution) {
  const chart = $("intent-chart");
  const title = chart.querySelector("title");
  chart.replaceChildren(title);
  const entries = Object.entries(distribution).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const rowHeight = 24;
  chart.setAttribute("viewBox", `0 0 400 ${Math.max(1, entries.length) * rowHeight}`);
  title.textContent = "Intent distribution: " + (entries.map(([k, n]) => `${k} ${n}`).join(", ") || "no analyses yet");
  entries.forEach(([intent, n], i) => {
    const y = i * rowHeight;
    const label = svg("text", { x: 0, y: y + 16, "font-size": 12, fill: "#1a1a1a" });
    label.textContent = intent;
    const bar = svg("rect", { x: 110, y: y + 4, height: 16, width: (n / max) * 240, fill: "#1d4ed8" });
    const value = svg("text", { x: 116 + (n / max) * 240, y: y + 16, "font-size": 12, fill: "#1a1a1a" });
    value.textContent = String(n);
    chart.append(label, bar, value);
  });
}

function drawAnswered(answered, total) {
  const chart = $("answered-chart");
  const title = chart.querySelector("title");
  const rate = total ? answered / total : 0;
  title.textContent = `Answered rate: ${Math.round(rate * 100)} % (${answered} of ${total} calls)`;
  const r = 50;
  const c = 2 * Math.PI * r;
  const ring = svg("circle", { cx: 60, cy: 60, r, fill: "none", stroke: "#e5e7eb", "stroke-width": 14 });
  const arc = svg("circle", { cx: 60, cy: 60, r, fill: "none", stroke: "#047857", "stroke-width": 14, "stroke-dasharray": `${rate * c} ${c}`, transform: "rotate(-90 60 60)" });
  const text = svg("text", { x: 60, y: 66, "text-anchor": "middle", "font-size": 18, fill: "#1a1a1a" });
  text.textContent = `${Math.round(rate * 100)} %`;
  chart.replaceChildren(title, ring, arc, text);
}

/** Bars: calls per day; line and dots: answered rate per day (0–100 %), where a day has calls. */
function drawDaily(daily) {
  const chart = $("daily-chart");
  const title = chart.querySelector("title");
  chart.replaceChildren(title);
  chart.toggleAttribute("hidden", !daily);
  $("daily-empty").hidden = Boolean(daily);
  if (!daily) {
    title.textContent = "Calls per day: choose a date range";
    return;
  }
  const [width, height, left, right, top, bottom] = [600, 200, 36, 44, 10, 24];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = Math.max(1, ...daily.map((d) => d.totalCalls));
  const slot = plotW / Math.max(1, daily.length);
  const barW = Math.max(1, slot * 0.8);
  const centre = (i) => left + i * slot + slot / 2;
  const rateY = (d) => top + plotH * (1 - d.answeredCalls / d.totalCalls);
  const text = (x, y, anchor, content) => {
    const t = svg("text", { x, y, "text-anchor": anchor, "font-size": 11, fill: "#1a1a1a" });
    t.textContent = content;
    return t;
  };
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  chart.append(
    svg("line", { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: "#6b7280" }),
    text(left - 4, top + 10, "end", String(max)),
    text(left - 4, top + plotH, "end", "0"),
    text(left + plotW + 4, top + 10, "start", "100 %"),
    text(left + plotW + 4, top + plotH, "start", "0 %"),
  );
  if (daily.length) {
    chart.append(text(left, height - 6, "start", daily[0].date), text(left + plotW, height - 6, "end", daily.at(-1).date));
  }
  daily.forEach((d, i) => {
    const h = (d.totalCalls / max) * plotH;
    const bar = svg("rect", { x: centre(i) - barW / 2, y: top + plotH - h, width: barW, height: h, fill: "#1d4ed8", "data-date": d.date, "data-calls": d.totalCalls, "data-answered": d.answeredCalls });
    const tip = svg("title", {});
    tip.textContent = `${d.date}: ${d.totalCalls} calls, ${d.answeredCalls} answered`;
    bar.append(tip);
    chart.append(bar);
  });
  // A day without calls has no rate: the line breaks there instead of dropping to 0 %.
  daily.forEach((d, i) => {
    if (!d.totalCalls) return;
    const prev = daily[i - 1];
    if (prev?.totalCalls) chart.append(svg("line", { x1: centre(i - 1), y1: rateY(prev), x2: centre(i), y2: rateY(d), stroke: "#047857", "stroke-width": 2 }));
    const rate = Math.round((d.answeredCalls / d.totalCalls) * 100);
    const dot = svg("circle", { cx: centre(i), cy: rateY(d), r: 3, fill: "#047857", "data-date": d.date, "data-rate": rate });
    const tip = svg("title", {});
    tip.textContent = `${d.date}: ${rate} % answered`;
    dot.append(tip);
    chart.append(dot);
  });
  title.textContent = dailyTitle(daily);
}

/** The daily chart's accessible summary: the range, its totals and its busiest day. */
function dailyTitle(daily) {
  if (!daily.length) return "Calls per day: no days in the range";
  const total = daily.reduce((n, d) => n + d.totalCalls, 0);
  const answered = daily.reduce((n, d) => n + d.answeredCalls, 0);
  const busiest = daily.reduce((a, d) => (d.totalCalls > a.totalCalls ? d : a));
  const span = `Calls per day, ${daily[0].date} to ${daily.at(-1).date}`;
  if (!total) return `${span}: no calls`;
  return `${span}: ${total} calls, ${answered} answered (${Math.round((answered / total) * 100)} %); most on ${busiest.date} (${busiest.totalCalls})`;
}

/** The intent choices are the summary's intents, plus the chosen one even if this range has none. */
function fillIntentOptions(distribution, applied) {
  const select = $("filter-intent");
  const chosen = select.value;
  const intents = new Set(Object.keys(distribution));
  for (const kept of [chosen, applied]) if (kept) intents.add(kept);
  const sorted = [...intents].sort();
  const current = [...select.options].slice(1).map((o) => o.value);
  // Left alone when unchanged, so a live refresh does not close a list the user has open.
  if (current.join("\n") === sorted.join("\n")) return;
  select.replaceChildren(new Option("any", ""), ...sorted.map((i) => new Option(i, i)));
  select.value = chosen;
}

async function loadSummary() {
  const mine = ++summaryRead;
  const f = filter;
  let data;
  try {
    ({ data } = await api(summaryPath(f)));
  } catch (e) {
    if (mine !== summaryRead) return; // a newer read owns the charts and the status line
    throw e;
  }
  if (mine !== summaryRead) return;
  const ranged = summaryRange(f).length > 0;
  drawIntents(data.stats.intentDistribution);
  drawAnswered(data.stats.answeredCalls, data.stats.totalCalls);
  drawDaily(ranged ? (data.daily ?? []) : null);
  fillIntentOptions(data.stats.intentDistribution, f.intent);
  $("summary-scope").textContent = ranged ? `Charts cover calls started ${f.from} to ${f.through} (UTC days).` : "Charts cover all calls.";
}

async function loadStats() {
  const { data } = await api("/api/cache/stats");
  const c = data.counters;
  const items = [
    ["Hit rate", `${Math.round(data.hitRate * 100)} %`],
    ["Memory hits", c.hitsMemory],
    ["KV hits", c.hitsKv],
    ["Misses (D1)", c.misses],
    ["Stale serves", c.staleServed],
    ["D1 rows avoided", c.d1RowsAvoided],
    ["Entries in memory", data.memory.entries],
    ["Bytes in memory", data.memory.bytes],
  ];
  $("cache-stats").replaceChildren(
    ...items.map(([k, v]) => {
      const div = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = String(v);
      div.append(dt, dd);
      return div;
    }),
  );
}

async function loadAll() {
  setStatus("Loading…");
  try {
    await loadCalls();
    await loadSummary();
    await loadStats();
    $("refresh").disabled = false;
    setStatus(`Loaded at ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    setStatus(e.message, true);
  }
}

function setLive(state, text) {
  $("live").textContent = text;
  $("live").dataset.state = state;
}

/** Re-reads what a change can touch: the current page of calls and the charts. */
async function refreshAfterChange() {
  try {
    await loadCalls();
    await loadSummary();
  } catch (e) {
    setStatus(e.message, true);
  }
}

function stopLive() {
  live.session += 1;
  clearTimeout(live.retryTimer);
  clearInterval(live.pollTimer);
  live.pollTimer = null;
  live.socket?.close(1000, "signed out");
  live.socket = null;
  live.attempt = 0;
}

function startPolling() {
  if (live.pollTimer) return;
  live.pollTimer = setInterval(refreshAfterChange, POLL_EVERY_MS);
}

function scheduleReconnect(session) {
  if (session !== live.session) return;
  const wait = BACKOFF_MS[Math.min(live.attempt, BACKOFF_MS.length - 1)];
  live.attempt += 1;
  // Until the feed is back, poll so the page still follows changes.
  startPolling();
  setLive("polling", `Live feed unavailable; polling every ${POLL_EVERY_MS / 1000} s, retrying in ${wait / 1000} s`);
  live.retryTimer = setTimeout(() => openLive(session), wait);
}

async function openLive(session) {
  if (session !== live.session) return;
  setLive("connecting", "Connecting to the live feed…");
  let ticket;
  try {
    ticket = (await api("/api/live/tickets", { method: "POST" })).data.ticket;
  } catch {
    return scheduleReconnect(session);
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/live?ticket=${encodeURIComponent(ticket)}`);
  live.socket = socket;
  socket.addEventListener("message", (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    if (msg.type === "hello") {
      live.attempt = 0;
      clearInterval(live.pollTimer);
      live.pollTimer = null;
      setLive("live", "Live");
      // Whatever changed while the feed was down is read now.
      if (minVersion && BigInt(msg.version) > BigInt(minVersion)) refreshAfterChange();
      minVersion = minVersion && BigInt(minVersion) > BigInt(msg.version) ? minVersion : msg.version;
    } else if (msg.type === "changed" || msg.type === "deleted") {
      if (!minVersion || BigInt(msg.version) > BigInt(minVersion)) minVersion = msg.version;
      setLive("live", `Live · ${msg.type} ${msg.callIds.join(", ")}`);
      refreshAfterChange();
    }
  });
  socket.addEventListener("close", () => {
    if (live.socket === socket) live.socket = null;
    scheduleReconnect(session);
  });
}

$("auth").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  cursors = [null];
  page = 0;
  minVersion = "";
  clearInterval(statsTimer);
  statsTimer = setInterval(() => loadStats().catch(() => {}), STATS_EVERY_MS);
  stopLive();
  loadAll().then(() => {
    if (!$("status").classList.contains("error")) openLive(live.session);
  });
});

$("refresh").addEventListener("click", loadAll);

/** The filter the controls describe (not yet applied). */
function readFilterControls() {
  return {
    statuses: [...document.querySelectorAll("#filter-status input:checked")].map((box) => box.value),
    direction: $("filter-direction").value,
    intent: $("filter-intent").value,
    from: $("filter-from").value,
    through: $("filter-through").value,
  };
}

/** Makes `f` the filter: paging restarts at the first page, and the table and charts are re-read. */
function applyFilter(f) {
  if (f.from && f.through && f.through < f.from) {
    setStatus("The end date is before the start date.", true);
    return;
  }
  filter = f;
  cursors = [null];
  page = 0;
  if (!token) {
    setStatus("Filters set; they apply once you load with a token.");
    return;
  }
  // The rows shown belong to the old filter; until the new page arrives (or fails) show none.
  $("calls").tBodies[0].replaceChildren();
  $("next").disabled = true;
  $("prev").disabled = true;
  $("page-label").textContent = "Page 1";
  loadAll();
}

$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilter(readFilterControls());
});
// "N days" is the N UTC days ending today, today included.
for (const button of document.querySelectorAll("#quick-ranges button[data-days]")) {
  button.addEventListener("click", () => {
    const through = todayUtc();
    $("filter-from").value = addDays(through, 1 - Number(button.dataset.days));
    $("filter-through").value = through;
    applyFilter(readFilterControls());
  });
}
$("clear-filters").addEventListener("click", () => {
  $("filters").reset();
  applyFilter(NO_FILTER);
});
$("next").addEventListener("click", () => {
  // Until the shown page's answer names the next cursor there is no next page to read.
  if (!cursors[page + 1]) return;
  page += 1;
  loadCalls().catch((e) => setStatus(e.message, true));
});
$("prev").addEventListener("click", () => {
  page = Math.max(0, page - 1);
  loadCalls().catch((e) => setStatus(e.message, true));
});

// Local runs (npm start, the tests) publish a dev token beside the page; deployments do not.
fetch("/dev-token.json", { cache: "no-store" })
  .then((res) => (res.ok ? res.json() : null))
  .then((dev) => {
    if (!dev?.token) return;
    const button = $("dev-token");
    button.hidden = false;
    button.textContent = `Use the local dev token (${dev.sub})`;
    button.addEventListener("click", () => {
      $("token").value = dev.token;
      $("auth").requestSubmit();
    });
  })
  .catch(() => {});
