// The scripted journey through the test site in headless Chromium (playwright-core).
//
//   node drive.cjs '<json>'   with {packages, chromium, flavour, site, capture, token, report}
//
// Visits home -> form -> big page -> home with clicks, typing, scrolling and console noise,
// counting exactly what it did; then leaves for an unrecorded page, so that the last
// recorded page unloads and its recorder sends what it still holds. It writes the report
// (what it did, and what the recorders kept: for rrweb every event the pages emitted, for
// posthog-js the events of every $snapshot batch it captured) to `report`, prints one line
// "ready", and keeps the browser open until its stdin closes: requests the pages sent on
// unload finish while the test waits for them to be stored.
"use strict";

const fs = require("fs");
const path = require("path");

const config = JSON.parse(process.argv[2]);
const { chromium } = require(path.join(config.packages, "node_modules", "playwright-core"));
const TIMEOUT = 30000;

const report = {
  flavour: config.flavour,
  clicks: 0,
  keypresses: 0,
  console: {},
  urls: [],
  sessionIds: [],
  failures: [],
  kept: [],
};

async function click(page, selector) {
  await page.click(selector);
  report.clicks += 1;
}

// Every typed character is one input event (rrweb records an input per change).
async function type(page, selector, text) {
  await click(page, selector);
  await page.keyboard.type(text);
  report.keypresses += text.length;
}

// A checkbox click is a click and an input event.
async function toggle(page, selector) {
  await click(page, selector);
  report.keypresses += 1;
}

async function noise(page) {
  const levels = await page.evaluate(() => window.NOISE_LEVELS);
  await click(page, "#noise");
  for (const level of levels) report.console[level] = (report.console[level] || 0) + 1;
}

// Turn the wheel down and wait until the page has scrolled.
async function scrollDown(page, pixels) {
  const before = await page.evaluate(() => window.scrollY);
  await page.mouse.wheel(0, pixels);
  await page.waitForFunction((y) => window.scrollY > y, before, { timeout: TIMEOUT });
}

// On a newly loaded page: wait for its recorder, note the url and the session id.
async function arrive(page) {
  await page.waitForFunction(
    () => window.__replayBootError || (window.__replay && window.__replay.ready()),
    null,
    { timeout: TIMEOUT },
  );
  const bootError = await page.evaluate(() => window.__replayBootError);
  if (bootError) throw new Error(bootError);
  report.urls.push(page.url());
  report.sessionIds.push(await page.evaluate(() => window.__replay.sessionId()));
}

// rrweb's recorder sends what it holds and reports failed posts; posthog-js flushes on
// its own (timer, beforeunload, pagehide).
async function flush(page) {
  if (config.flavour !== "rrweb") return;
  report.failures.push(...(await page.evaluate(() => window.__replay.flush())));
}

async function follow(page, selector) {
  await flush(page);
  await Promise.all([page.waitForEvent("load", { timeout: TIMEOUT }), click(page, selector)]);
  await arrive(page);
}

async function journey(page) {
  await page.goto(config.site + "/index.html");
  await arrive(page);
  await page.mouse.move(40, 40);
  await page.mouse.move(300, 200, { steps: 5 }); // posthog-js uploads after an interaction
  await noise(page);
  for (let i = 0; i < 3; i += 1) await click(page, "#count");

  await follow(page, "#nav-form");
  await type(page, "#name", "Ada Lovelace");
  await type(page, "#email", "ada@example.com");
  await type(page, "#about", "Engines weave algebraic patterns.");
  await toggle(page, "#agree");
  await click(page, "#submit");
  await page.waitForSelector("#thanks", { state: "visible", timeout: TIMEOUT });

  await follow(page, "#nav-big");
  await click(page, "#count");
  for (const pixels of [1500, 4000, 9000]) await scrollDown(page, pixels);
  await page.mouse.move(200, 300, { steps: 3 });
  await page.evaluate(() => document.getElementById("bottom").scrollIntoView());
  await click(page, "#bottom");

  await follow(page, "#nav-home");
  await noise(page);
  await click(page, "#count");
  await flush(page);
  await page.goto(config.site + "/done.html");
  await collectKept(page);
}

// What the recorders kept in the tab's sessionStorage (boot.js), read on the unrecorded
// last page of the same origin, after every recorded page has unloaded.
async function collectKept(page) {
  const kept = await page.evaluate(() => {
    const count = Number(sessionStorage.getItem("replay-kept") || 0);
    const values = [];
    for (let i = 0; i < count; i += 1) values.push(sessionStorage.getItem("replay-kept-" + i));
    return { values, error: sessionStorage.getItem("replay-kept-error") };
  });
  if (kept.error) report.failures.push("keeping what was recorded: " + kept.error);
  report.kept = kept.values.map((text) => JSON.parse(text));
}

function waitForStdinEnd() {
  return new Promise((resolve) => {
    process.stdin.on("data", () => {});
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
  });
}

// Bounds the journey: a step that hangs beyond its own timeout still ends the driver.
const watchdog = setTimeout(() => {
  process.stderr.write("the journey did not finish in time\n");
  process.exit(2);
}, 150000);

async function main() {
  const browser = await chromium.launch({ executablePath: config.chromium });
  try {
    const context = await browser.newContext();
    await context.addInitScript((settings) => {
      window.__REPLAY_TEST__ = settings;
    }, { flavour: config.flavour, captureUrl: config.capture, token: config.token });
    const page = await context.newPage();
    page.on("pageerror", (error) => report.failures.push("page error: " + error.message));
    await journey(page);
    fs.writeFileSync(config.report, JSON.stringify(report));
    clearTimeout(watchdog);
    process.stdout.write("ready\n");
    await waitForStdinEnd();
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error) + "\n");
  process.exit(1);
});
