// The test site's own behaviour, the same whichever recorder boot.js starts. The console
// calls of the noise button are listed here, so the driver can count them by level.
(function () {
  "use strict";
  const NOISE = [
    ["log", "a log line", { answer: 42 }],
    ["info", "some information"],
    ["debug", "a debug detail"],
    ["warn", "a warning"],
    ["error", "an error, handled"],
    ["table", [{ name: "ada", age: 36 }, { name: "alan", age: 41 }]],
    ["count", "noise"],
    ["count", "noise"],
    ["countReset", "noise"],
    ["assert", false, "an assertion that fails"],
    ["group", "a group"],
    ["log", "inside the group"],
    ["groupEnd"],
    ["groupCollapsed", "a collapsed group"],
    ["groupEnd"],
    ["trace", "where am I"],
    ["dir", { nested: { deeper: [1, 2, 3] } }],
    ["dirxml", "dirxml of a string"],
    ["time", "timer"],
    ["timeLog", "timer"],
    ["timeEnd", "timer"],
  ];
  window.NOISE_LEVELS = NOISE.map((call) => call[0]);

  function on(id, type, handler) {
    const element = document.getElementById(id);
    if (element) element.addEventListener(type, handler);
  }

  on("noise", "click", () => {
    for (const [level, ...args] of NOISE) console[level](...args);
  });
  on("count", "click", () => {
    const output = document.getElementById("counted");
    output.textContent = String(Number(output.textContent) + 1);
  });
  on("signup", "submit", (event) => {
    event.preventDefault();
    document.getElementById("thanks").hidden = false;
  });
  on("bottom", "click", () => window.scrollTo(0, 0));
})();
