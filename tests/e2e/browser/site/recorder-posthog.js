// Unmodified posthog-js (dist/array.full.js, which bundles the recorder) pointed at the
// capture endpoint. Headless browsers are dropped unless opt_out_useragent_filter is set.
// before_send (a posthog-js option) keeps the rrweb events of every $snapshot batch, as
// posthog-js is about to send them, for the driver (boot.js __replayKeep).
(function () {
  "use strict";
  const config = window.__REPLAY_TEST__;
  window.posthog.init(config.token, {
    api_host: config.captureUrl,
    opt_out_useragent_filter: true,
    disable_session_recording: false,
    enable_recording_console_log: true,
    autocapture: false,
    persistence: "localStorage",
    before_send: (event) => {
      if (event && event.event === "$snapshot") {
        window.__replayKeep(event.properties.$snapshot_data);
      }
      return event;
    },
  });
  window.__replay = {
    ready: () => window.posthog.sessionRecordingStarted(),
    sessionId: () => window.posthog.get_session_id(),
  };
})();
