// Opens the player page in headless Chromium and reports, in ms since navigation began,
// when it started playing and when every event had arrived in the page.
//
//   node player_probe.cjs '<json>'   with {packages, chromium, url, events, seconds}
"use strict";

const path = require("path");

const config = JSON.parse(process.argv[2]);
const { chromium } = require(path.join(config.packages, "node_modules", "playwright-core"));

async function main() {
  const browser = await chromium.launch({ executablePath: config.chromium });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const timeout = (config.seconds || 300) * 1000;
    const started = Date.now();
    await page.goto(config.url, { waitUntil: "commit" });
    await page.waitForFunction(() => document.body && document.body.dataset.replayState === "playing", null, {
      timeout,
      polling: 10,
    });
    const playing = Date.now() - started;
    const loadedAtPlaying = await page.evaluate(() => document.getElementById("replay-loaded").textContent);
    await page.waitForFunction(
      (total) => document.getElementById("replay-loaded").textContent === `${total} events loaded`,
      config.events,
      { timeout, polling: 50 },
    );
    const loaded = Date.now() - started;
    process.stdout.write(JSON.stringify({ playing, loaded, loadedAtPlaying }) + "\n");
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error) + "\n");
  process.exit(1);
});
