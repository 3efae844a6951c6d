// Starts the recorder the driver asked for (window.__REPLAY_TEST__, set by the driver
// before any page script runs): "posthog" (unmodified posthog-js) or "rrweb" (plain
// rrweb.record with the console plugin). Without that setting the page is not recorded.
//
// window.__replayKeep(value) keeps what a recorder produced, for the driver, in the
// tab's sessionStorage: a synchronous write survives the page's unload (a message to the
// driver sent as the page goes can be lost), and the driver reads it all at the end from
// an unrecorded page of the same origin. Chromium allows about 5 M characters.
(function () {
  "use strict";
  const config = window.__REPLAY_TEST__;
  if (!config) return;

  window.__replayKeep = (value) => {
    const next = Number(sessionStorage.getItem("replay-kept") || 0);
    try {
      sessionStorage.setItem("replay-kept-" + next, JSON.stringify(value));
      sessionStorage.setItem("replay-kept", String(next + 1));
    } catch (error) {
      sessionStorage.setItem("replay-kept-error", String(error));
    }
  };
  const SCRIPTS = {
    posthog: ["/js/posthog-js/dist/array.full.js", "/recorder-posthog.js"],
    rrweb: [
      "/js/rrweb/dist/rrweb.umd.min.cjs",
      "/js/@rrweb/rrweb-plugin-console-record/dist/rrweb-plugin-console-record.umd.min.cjs",
      "/recorder-rrweb.js",
    ],
  };

  function load(sources) {
    if (!sources.length) return;
    const script = document.createElement("script");
    script.src = sources[0];
    script.onload = () => load(sources.slice(1));
    script.onerror = () => {
      window.__replayBootError = "could not load " + sources[0];
    };
    document.body.appendChild(script);
  }

  load(SCRIPTS[config.flavour] || []);
})();
