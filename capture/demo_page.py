"""The demo page `GET /` of the capture endpoint: it records itself with rrweb (console
plugin included), posts to the plain intake with the demo team's token, and shows its
own session's summary as the worker counts it (polling `/demo/sessions/{id}`).

It is written for someone who has just started `replay-ingest run`: each summary row has a
plain label, and its field name (the row's `data-field`, which the browser test reads);
until the first summary the table says what it waits for; a page that cannot record (no
rrweb, no demo team) says how to fix it and disables its controls."""

from __future__ import annotations

import msgspec

RRWEB_MISSING = (
    "rrweb is not installed here, so this page cannot record itself. "
    "<code>replay-ingest run</code> installs it in the background when npm is available "
    "(progress in <code>$REPLAY_DATA_DIR/npm.log</code>): reload when it is done. Otherwise "
    "run <code>npm install --prefix $REPLAY_DATA_DIR/js rrweb "
    "@rrweb/rrweb-plugin-console-record</code> (or set REPLAY_CAPTURE_NODE_MODULES to a "
    "node_modules holding both) and reload."
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>replay-ingest demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;min-width:24rem}th{text-align:left}
td,th{padding:.25rem .8rem;border-bottom:1px solid #ddd}td.n{text-align:right}
td.f{color:#666;font:.8em monospace}button{margin:.2rem}
#status{padding:.5rem .8rem;background:#f3f6fa;border-left:4px solid #8aa4c8}
#status.problem{background:#fff4e5;border-left-color:#e08a00}
</style></head><body>
<h1>A page that records itself</h1>
<p>rrweb records this page and posts its events to this capture endpoint every two
seconds; the worker summarises the session, and the table below shows what it counted.
It runs a few seconds behind: the worker flushes summaries every
<code>REPLAY_SUMMARY_FLUSH_INTERVAL_SECONDS</code>. Click the buttons, type, scroll,
and watch the counts move.</p>
<p id="status">Starting the recorder...</p>
<p><button id="click">Click me</button> <button id="log">console.log</button>
<button id="warn">console.warn</button> <button id="error">console.error</button></p>
<p><input id="text" placeholder="type here (each change is one keypress)" size="40"></p>
<table><thead><tr><th colspan="3" id="summary-head">What the worker counted</th></tr>
</thead><tbody id="summary"></tbody></table>
<script>window.REPLAY_DEMO = __CONFIG__;</script>
<script src="/demo/rrweb.js"></script>
<script src="/demo/rrweb-console-record.js"></script>
<script>
(function () {
  const cfg = window.REPLAY_DEMO, status = document.getElementById("status");
  function problem(html) {
    status.innerHTML = html; status.className = "problem";
    for (const control of document.querySelectorAll("button, input")) control.disabled = true;
    document.querySelector("table").hidden = true;
  }
  if (!cfg.token) { problem(cfg.noTeam); return; }
  if (typeof rrweb === "undefined" || typeof rrwebPluginConsoleRecord === "undefined") {
    problem(cfg.missing); return;
  }
  const newId = () => (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : Date.now().toString(36) + Math.random().toString(36).slice(2);
  const session = newId(), windowId = newId();
  const time = () => new Date().toLocaleTimeString();
  let pending = [];
  rrweb.record({
    emit: (event) => pending.push(event),
    plugins: [rrwebPluginConsoleRecord.getRecordConsolePlugin()],
  });
  async function flush(keepalive) {
    if (!pending.length) return;
    const batch = pending; pending = [];
    try {
      const url = `/v1/recordings/${session}/events?window_id=${windowId}`;
      const answer = await fetch(url, {method: "POST", keepalive: !!keepalive,
        headers: {"Authorization": "Bearer " + cfg.token, "Content-Type": "application/json"},
        body: JSON.stringify(batch)});
      if (answer.status === 429 || answer.status >= 500) pending = batch.concat(pending);
      status.textContent = `Recording session ${session}: last upload ${answer.status}` +
        ` (${batch.length} event${batch.length === 1 ? "" : "s"}) at ${time()}`;
      status.className = answer.status === 200 ? "" : "problem";
    } catch (error) { pending = batch.concat(pending); }
  }
  const shown = [["click_count", "Clicks (anywhere on the page)"],
    ["keypress_count", "Keypresses (input changes)"],
    ["mouse_activity_count", "Mouse activity (moves, clicks)"],
    ["console_log_count", "console.log (and info, debug, table...)"],
    ["console_warn_count", "console.warn"], ["console_error_count", "console.error"],
    ["event_count", "rrweb events stored"], ["message_count", "Kafka messages"],
    ["active_milliseconds", "Active time (ms)"], ["has_full_snapshot", "Full snapshot seen"]];
  const table = document.getElementById("summary");
  function note(text) {
    table.innerHTML = ""; const cell = table.insertRow().insertCell();
    cell.colSpan = 3; cell.textContent = text;
  }
  note("Waiting for the first upload...");
  async function poll() {
    const answer = await fetch(cfg.summary + session);
    const body = await answer.json();
    if (answer.status === 404) {
      note("Uploaded; waiting for the worker's first summary of this session..."); return;
    }
    if (answer.status !== 200) {
      note(`No summary (${answer.status}): ${body.error || "unknown error"}`); return;
    }
    table.innerHTML = "";
    for (const [name, label] of shown) {
      const row = table.insertRow(); row.dataset.field = name;
      row.insertCell().textContent = label;
      const value = row.insertCell(); value.className = "n"; value.textContent = String(body[name]);
      const field = row.insertCell(); field.className = "f"; field.textContent = name;
    }
    document.getElementById("summary-head").textContent =
      `What the worker counted (updated ${time()})`;
  }
  let clicks = 0;
  const button = document.getElementById("click");
  button.onclick = () => { button.textContent = `Clicked ${++clicks} times`; };
  for (const level of ["log", "warn", "error"]) {
    document.getElementById(level).onclick = () => console[level](`demo ${level}`);
  }
  setInterval(flush, 2000);
  setInterval(() => poll().catch(() => {}), 3000);
  addEventListener("pagehide", () => flush(true));
})();
</script>
</body></html>
"""

NO_DEMO_TEAM = (
    "The team registry (REPLAY_TEAMS_FILE) has no team with the demo token "
    "<code>__TOKEN__</code>: add one to record this page."
)


def demo_page(token: str | None, demo_token: str, summary_prefix: str) -> str:
    """The page, recording with `token` (None: the page says why it cannot record)."""
    config = {
        "token": token,
        "summary": summary_prefix,
        "missing": RRWEB_MISSING,
        "noTeam": NO_DEMO_TEAM.replace("__TOKEN__", demo_token),
    }
    text = msgspec.json.encode(config).decode().replace("</", "<\\/")
    return _PAGE.replace("__CONFIG__", text)
