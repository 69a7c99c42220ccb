// The console: no framework, no build step. Reads the dashboard API with the pasted token and
// shows calls (cursor paging), the intent summary as SVG charts, and the cache's counters,
// plus which tier served each of this page's own requests. It follows the live feed
// (/api/live): a change message makes it re-read the page and the charts with X-Min-Version,
// so what it shows is at least as new as the change; when the feed is unavailable it
// reconnects with backoff and polls meanwhile.
const PAGE_SIZE = 20;
const STATS_EVERY_MS = 5000;
const POLL_EVERY_MS = 10_000;
const BACKOFF_MS = [1000, 2000, 5000, 10_000, 30_000];
const $ = (id) => document.getElementById(id);

let token = "";
let cursors = [null]; // cursors[i] starts page i; null is the first page
let page = 0;
let statsTimer;
let minVersion = ""; // the newest version the feed announced
let live = { socket: null, attempt: 0, retryTimer: null, pollTimer: null, session: 0 };

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

async function loadCalls() {
  const cursor = cursors[page];
  const path = cursor ? `/api/webhook-calls?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(cursor)}` : `/api/webhook-calls?limit=${PAGE_SIZE}`;
  const { data, meta } = await api(path);
  const tbody = $("calls").tBodies[0];
  tbody.replaceChildren();
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

async function loadSummary() {
  const { data } = await api("/api/intent-analysis");
  drawIntents(data.stats.intentDistribution);
  drawAnswered(data.stats.answeredCalls, data.stats.totalCalls);
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
$("next").addEventListener("click", () => {
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
