"""The demo page `GET /` of the capture endpoint: it records itself with rrweb (console
plugin included), posts to the plain intake with the demo team's token, and shows its
own session's summary as the worker counts it (polling `/demo/sessions/{id}`)."""

from __future__ import annotations

import msgspec

RRWEB_MISSING = (
    "rrweb is not installed here. <code>replay-ingest run</code> installs it when npm is "
    "available; otherwise run <code>npm install --prefix $REPLAY_DATA_DIR/js rrweb "
    "@rrweb/rrweb-plugin-console-record</code> (or set REPLAY_CAPTURE_NODE_MODULES to a "
    "node_modules holding both) and reload."
)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>replay-ingest demo</title>
<style>
body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
td{padding:.2rem .8rem;border-bottom:1px solid #ddd}button{margin:.2rem}
</style></head><body>
<h1>A page that records itself</h1>
<p>rrweb records this page and posts its events to this capture endpoint every two
seconds; the worker summarises the session, and the table below shows what it counted
(a few seconds behind: the worker flushes summaries every
<code>REPLAY_SUMMARY_FLUSH_INTERVAL_SECONDS</code>). Click, type, scroll.</p>
<p id="status">starting...</p>
<p><button id="click">Click me</button> <button id="log">console.log</button>
<button id="warn">console.warn</button> <button id="error">console.error</button></p>
<p><input id="text" placeholder="type here" size="40"></p>
<table id="summary"></table>
<script>window.REPLAY_DEMO = __CONFIG__;</script>
<script src="/demo/rrweb.js"></script>
<script src="/demo/rrweb-console-record.js"></script>
<script>
(function () {
  const cfg = window.REPLAY_DEMO, status = document.getElementById("status");
  if (!cfg.token) { status.innerHTML = cfg.noTeam; return; }
  if (typeof rrweb === "undefined" || typeof rrwebPluginConsoleRecord === "undefined") {
    status.innerHTML = cfg.missing; return;
  }
  const newId = () => (window.crypto && crypto.randomUUID) ? crypto.randomUUID()
    : Date.now().toString(36) + Math.random().toString(36).slice(2);
  const session = newId(), windowId = newId();
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
      status.textContent = `session ${session}: last upload ${answer.status}`;
    } catch (error) { pending = batch.concat(pending); }
  }
  const shown = ["click_count", "keypress_count", "mouse_activity_count",
    "console_log_count", "console_warn_count", "console_error_count",
    "event_count", "message_count", "active_milliseconds", "has_full_snapshot"];
  async function poll() {
    const answer = await fetch(cfg.summary + session);
    const body = await answer.json();
    const table = document.getElementById("summary");
    if (answer.status !== 200) { table.innerHTML = `<tr><td>${answer.status}</td><td></td></tr>`;
      table.rows[0].cells[1].textContent = body.error || ""; return; }
    table.innerHTML = "";
    for (const name of shown) {
      const row = table.insertRow(); row.insertCell().textContent = name;
      row.insertCell().textContent = String(body[name]);
    }
  }
  let clicks = 0;
  document.getElementById("click").onclick = () => { clicks += 1; };
  document.getElementById("log").onclick = () => console.log("demo log", ++clicks);
  document.getElementById("warn").onclick = () => console.warn("demo warn", ++clicks);
  document.getElementById("error").onclick = () => console.error("demo error", ++clicks);
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
