// Plain rrweb.record with the console plugin, posting batches to the capture endpoint's
// plain intake. One session (and window) id for the tab, kept in sessionStorage across
// pages. Every emitted event is also kept for the driver (boot.js __replayKeep), so the
// test knows exactly what the pages produced, whatever happens on the wire.
(function () {
  "use strict";
  const config = window.__REPLAY_TEST__;
  const KEEPALIVE_MAX = 60 * 1024; // browsers refuse keepalive bodies over 64 KiB

  function tabId(name) {
    let value = sessionStorage.getItem(name);
    if (!value) {
      value = crypto.randomUUID();
      sessionStorage.setItem(name, value);
    }
    return value;
  }

  const sessionId = tabId("replay-session-id");
  const windowId = tabId("replay-window-id");
  const url =
    config.captureUrl + "/v1/recordings/" + encodeURIComponent(sessionId) +
    "/events?window_id=" + encodeURIComponent(windowId);
  const failures = [];
  let buffer = [];
  let sending = Promise.resolve();

  function post(events, keepalive) {
    const body = JSON.stringify(events);
    return fetch(url, {
      method: "POST",
      body,
      keepalive: keepalive && body.length < KEEPALIVE_MAX,
      headers: { Authorization: "Bearer " + config.token, "Content-Type": "application/json" },
    }).then(
      (response) => {
        if (response.status !== 200) failures.push("status " + response.status);
      },
      (error) => failures.push(String(error)),
    );
  }

  // Batches go out one after another, in the order they were emitted.
  function flush(keepalive) {
    if (buffer.length) {
      const events = buffer;
      buffer = [];
      sending = sending.then(() => post(events, keepalive));
    }
    return sending;
  }

  rrweb.record({
    emit(event) {
      buffer.push(event);
      window.__replayKeep(event);
    },
    plugins: [rrwebPluginConsoleRecord.getRecordConsolePlugin()],
  });
  setInterval(() => flush(false), 1000);
  // What the last moments of a page emitted (the click on a link) leaves on unload.
  window.addEventListener("pagehide", () => {
    if (buffer.length) post(buffer.splice(0), true);
  });
  window.__replay = {
    ready: () => true,
    sessionId: () => sessionId,
    flush: () => flush(false).then(() => failures.slice()),
  };
})();
