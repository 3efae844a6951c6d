// The player page of replay-ingest (GET /replay/{team_id}/{session_id}).
//
// It streams the session's events as JSON lines of [window_id, event] (the worker reads
// them from ClickHouse or S3 alike), hands them to rrweb-player as they arrive (a large
// session starts playing as soon as its first full snapshot is in), keeps every browser
// window apart (a switcher when there are several), marks the batches known missing on
// the timeline, and follows a session still being recorded over Server-Sent Events in
// rrweb's live mode (?live=0 plays it from the start instead). Its state is on <body>
// for tests and monitoring:
//   data-replay-state: loading | playing | paused | finished | live | unplayable | error
//   data-replay-time:  ms since the first event of the window being played
// Everything recorded is hostile data: it reaches the DOM only as text (textContent) or
// inside rrweb's sandboxed replay iframe, never as HTML of this page.
"use strict";

(() => {
  const body = document.body;
  const team = body.dataset.team;
  const session = body.dataset.session;
  const token = body.dataset.token || "";
  const query = new URLSearchParams(location.search);
  const SPEEDS = [1, 2, 4, 8, 16, 32];
  const speed = SPEEDS.includes(Number(query.get("speed"))) ? Number(query.get("speed")) : 1;
  const following = query.get("live") !== "0"; // ?live=0: play a live session from the start
  const LIVE_BUFFER_MS = 500;
  const MAX_ERRORS_LISTED = 200;
  const EventType = { FullSnapshot: 2, Meta: 4, Plugin: 6 };

  const windows = new Map(); // window id -> Win
  const order = []; // window ids in order of first event
  const errors = []; // console errors: {window, timestamp, text}
  const seen = new Set(); // lines of a live session, to drop the ones sent twice
  let manifest = { gaps: [], live: false };
  let current = null; // the Win being played
  let player = null;
  let loading = true;
  let ended = false; // the player reached the end of what had arrived
  let live = false;
  let lastReplayTime = 0;

  const $ = (id) => document.getElementById(id);

  function setState(state) {
    body.dataset.replayState = state;
    $("replay-state").textContent = state;
  }

  function say(text) {
    $("replay-message").textContent = text;
    $("replay-message").hidden = !text;
  }

  function setTime(ms) {
    lastReplayTime = Math.max(0, Math.round(ms));
    body.dataset.replayTime = String(lastReplayTime);
  }

  function url(path, extra) {
    const params = new URLSearchParams(extra || {});
    if (token) params.set("token", token);
    const base = `/api/teams/${encodeURIComponent(team)}/sessions/${encodeURIComponent(session)}`;
    return `${base}/${path}?${params}`;
  }

  function fail(text) {
    loading = false;
    setState("error");
    say(text);
  }

  // -- the events, window by window -------------------------------------------------

  function windowOf(id) {
    let win = windows.get(id);
    if (!win) {
      // start: index of the event playing starts at (the meta before the first full snapshot)
      win = { id, events: [], start: -1, lastMeta: -1, fed: 0, href: "" };
      windows.set(id, win);
      order.push(id);
      renderWindows();
    }
    return win;
  }

  function addLine(text) {
    let pair;
    try {
      pair = JSON.parse(text);
    } catch (_) {
      return;
    }
    if (!Array.isArray(pair) || pair.length !== 2) return;
    const [id, event] = pair;
    if (typeof id !== "string" || !event || typeof event !== "object") return;
    if (typeof event.timestamp !== "number" || typeof event.type !== "number") return;
    if (live) {
      if (seen.has(text)) return;
      seen.add(text);
    } else if (manifest.live) {
      seen.add(text);
    }
    addEvent(windowOf(id), event);
  }

  function addEvent(win, event) {
    const index = win.events.push(event) - 1;
    if (event.type === EventType.Meta) {
      win.lastMeta = index;
      if (!win.href && event.data && typeof event.data.href === "string") {
        win.href = event.data.href;
        renderWindows();
      }
    }
    if (event.type === EventType.FullSnapshot && win.start < 0) {
      win.start = win.lastMeta >= 0 ? win.lastMeta : index;
      renderWindows();
    }
    noteConsoleError(win, event);
    if (win === current && player) {
      feed(win);
    } else if (current === null && win.start >= 0) {
      play(win);
    }
  }

  function noteConsoleError(win, event) {
    if (event.type !== EventType.Plugin || !event.data) return;
    const payload = event.data.payload;
    if (event.data.plugin !== "rrweb/console@1" || !payload) return;
    if (payload.level !== "error" && payload.level !== "assert") return;
    const parts = Array.isArray(payload.payload) ? payload.payload : [];
    if (errors.length >= MAX_ERRORS_LISTED) return; // the summary has the full count
    const text = parts.map((part) => String(part)).join(" ").slice(0, 300);
    errors.push({ window: win.id, timestamp: event.timestamp, text });
    renderError(errors[errors.length - 1]);
  }

  // -- the player ----------------------------------------------------------------------

  function playable(win) {
    const events = win.events.slice(win.start);
    if (events[0].type !== EventType.Meta) {
      // a window whose full snapshot has no meta before it: rrweb needs one for its size
      const first = events[0];
      events.unshift({ type: EventType.Meta, timestamp: first.timestamp, data: { href: "", width: 1280, height: 800 } });
    }
    return events;
  }

  function play(win) {
    stop();
    ended = false;
    current = win;
    renderWindows();
    if (win.start < 0) {
      setState(loading ? "loading" : "unplayable");
      say(loading ? "" : "unplayable: no full snapshot in this window");
      return;
    }
    say("");
    const events = playable(win);
    win.fed = win.events.length;
    const target = $("replay-player");
    player = new rrwebPlayer.Player({
      target,
      props: {
        events,
        autoPlay: !live,
        speed,
        showController: !live,
        liveMode: live,
        width: Math.max(480, target.clientWidth - 8),
        height: 540,
      },
    });
    player.addEventListener("ui-update-current-time", (event) => setTime(event.payload));
    player.addEventListener("ui-update-player-state", (event) => {
      if (live) return;
      if (event.payload === "playing") {
        ended = false;
        setState("playing");
      } else if (event.payload === "paused" && !ended) {
        setState("paused"); // a pause at the end is "loading" or "finished" (onFinish)
      }
    });
    player.addEventListener("finish", onFinish);
    if (live) startLive(win);
    else setState("playing");
    drawGaps();
  }

  function stop() {
    if (player) {
      player.pause();
      player.$destroy();
      player = null;
    }
    $("replay-player").replaceChildren();
  }

  function feed(win) {
    while (win.fed < win.events.length) player.addEvent(win.events[win.fed++]);
    if (ended && !live) {
      ended = false; // more has arrived: go on from where it stopped
      player.goto(lastReplayTime, true);
    }
  }

  function onFinish() {
    if (live) return;
    ended = true;
    setTime(player.getMetaData().totalTime);
    setState(loading ? "loading" : "finished"); // loading: it goes on when more is in
  }

  function finishLoading() {
    loading = false;
    if (windows.size === 0 || ![...windows.values()].some((win) => win.start >= 0)) {
      stop();
      setState("unplayable");
      say("unplayable: no full snapshot");
      return;
    }
    if (current && current.start < 0) play(firstPlayable());
    if (ended) setState("finished");
    drawGaps();
    if (manifest.live && following) follow();
  }

  function firstPlayable() {
    return order.map((id) => windows.get(id)).find((win) => win.start >= 0);
  }

  // -- live --------------------------------------------------------------------------

  function startLive(win) {
    const last = win.events[win.events.length - 1].timestamp;
    player.getReplayer().startLive(Math.max(last, Date.now() - LIVE_BUFFER_MS));
    setState("live");
    say("live");
    setInterval(() => player && setTime(player.getReplayer().getCurrentTime()), 250);
  }

  function follow() {
    live = true;
    const fromStart = new URL(location.href);
    fromStart.searchParams.set("live", "0");
    $("replay-from-start").href = fromStart.toString();
    $("replay-from-start").hidden = false;
    if (current && current.start >= 0) play(current);
    const source = new EventSource(url("live", { cursor: String(manifest.live_cursor) }));
    source.onmessage = (message) => message.data.split("\n").forEach(addLine);
    source.addEventListener("end", () => {
      source.close();
      live = false;
      $("replay-from-start").hidden = true;
      say("the recording has ended");
      setState("finished");
    });
  }

  // -- loading -------------------------------------------------------------------------

  async function load() {
    setState("loading");
    const answer = await fetch(url("player"), { credentials: "same-origin" });
    if (!answer.ok) return fail(await reason(answer));
    manifest = await answer.json();
    renderSummary(manifest.summary);
    renderGaps();
    const events = await fetch(url("events"), { credentials: "same-origin" });
    if (events.status === 404) {
      loading = false;
      setState("unplayable");
      return say("unplayable: no events stored for this session");
    }
    if (!events.ok) return fail(await reason(events));
    await readLines(events.body, addLine);
    finishLoading();
  }

  async function reason(answer) {
    try {
      return `${answer.status}: ${(await answer.json()).error}`;
    } catch (_) {
      return `${answer.status}: ${answer.statusText}`;
    }
  }

  // Each chunk of the streamed body is a page of events, added before the next is read.
  async function readLines(stream, each) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += decoder.decode(value, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop();
      lines.forEach((line) => line && each(line));
      $("replay-loaded").textContent = `${count()} events loaded`;
    }
    if (pending) each(pending);
    $("replay-loaded").textContent = `${count()} events loaded`;
  }

  function count() {
    let total = 0;
    windows.forEach((win) => (total += win.events.length));
    return total;
  }

  // -- what is around the player ------------------------------------------------------

  function renderWindows() {
    const list = $("replay-windows");
    list.hidden = order.length < 2;
    list.replaceChildren(
      ...order.map((id, number) => {
        const win = windows.get(id);
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.window = id;
        button.textContent = `Window ${number + 1}${win.href ? `: ${win.href}` : ""}${win.start < 0 ? " (no full snapshot)" : ""}`;
        button.setAttribute("aria-pressed", String(win === current));
        button.onclick = () => play(win);
        return button;
      }),
    );
  }

  function renderSummary(summary) {
    if (!summary) return;
    const start = moment(String(summary.start_time));
    const end = moment(String(summary.end_time));
    const rows = [
      ["Start", isNaN(start) ? summary.start_time : start.toISOString()],
      ["Duration", clock(end - start)],
      ["Clicks", summary.click_count],
      ["Keypresses", summary.keypress_count],
      ["Console errors", summary.console_error_count],
      ["Windows", summary.window_count],
      ["Stored in", summary.storage],
    ];
    $("replay-summary").replaceChildren(
      ...rows.flatMap(([name, value]) => {
        const term = document.createElement("dt");
        const detail = document.createElement("dd");
        term.textContent = name;
        detail.textContent = String(value);
        return [term, detail];
      }),
    );
    $("replay-urls").replaceChildren(
      ...(summary.all_urls || []).slice(0, 100).map((href) => {
        const item = document.createElement("li");
        item.textContent = href;
        return item;
      }),
    );
  }

  function renderError(error) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = error.text || "(no message)";
    button.onclick = () => jump(error);
    item.append(button);
    $("replay-errors").append(item);
  }

  function jump(error) {
    const win = windows.get(error.window);
    if (!win || win.start < 0) return;
    if (win !== current) play(win);
    const first = playable(win)[0].timestamp;
    player.goto(Math.max(0, error.timestamp - first), false);
  }

  function renderGaps() {
    $("replay-gap-list").replaceChildren(
      ...manifest.gaps.map((gap) => {
        const item = document.createElement("li");
        item.textContent = `${new Date(gap.timestamp_ms).toISOString()}: ${gap.batches} batch(es) missing (${gap.reason})`;
        return item;
      }),
    );
  }

  // Gaps of this window, and of windows whose every batch is missing.
  function drawGaps() {
    const bar = document.querySelector("#replay-player .rr-progress");
    if (!bar || !current || current.start < 0) return;
    bar.querySelectorAll("[data-gap]").forEach((marker) => marker.remove());
    const events = playable(current);
    const first = events[0].timestamp;
    const total = Math.max(1, events[events.length - 1].timestamp - first);
    manifest.gaps
      .filter((gap) => gap.window_id === current.id || !windows.has(gap.window_id))
      .forEach((gap) => {
        const marker = document.createElement("div");
        const at = Math.min(1, Math.max(0, (gap.timestamp_ms - first) / total));
        marker.dataset.gap = gap.reason;
        marker.className = "replay-gap";
        marker.style.left = `${(at * 100).toFixed(2)}%`;
        marker.title = `${gap.batches} batch(es) missing: ${gap.reason}`;
        bar.append(marker);
      });
  }

  function moment(text) {
    return new Date(/[zZ]$|[+-]\d\d:?\d\d$/.test(text) ? text : `${text.replace(" ", "T")}Z`);
  }

  function clock(ms) {
    const seconds = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  setInterval(() => loading && drawGaps(), 1000);
  if (typeof rrwebPlayer === "undefined") {
    fail("rrweb-player is not installed on the worker: run `replay-ingest player install`");
  } else {
    load().catch((error) => fail(String(error)));
  }
})();
