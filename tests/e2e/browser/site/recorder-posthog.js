// Unmodified posthog-js (dist/array.full.js, which bundles the recorder) pointed at the
// capture endpoint. Headless browsers are dropped unless opt_out_useragent_filter is set.
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
  });
  window.__replay = {
    ready: () => window.posthog.sessionRecordingStarted(),
    sessionId: () => window.posthog.get_session_id(),
  };
})();
