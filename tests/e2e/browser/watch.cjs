// A viewer of the player page in headless Chromium (playwright-core), driven by the tests
// over stdin/stdout: one JSON request per line in, one JSON answer per line out.
//
//   node watch.cjs '<json>'   with {packages, chromium}
//
// Requests {op, ...}; answers {ok: true, value} or {ok: false, error}:
//   open {url, headers}        navigate; value: the HTTP status of the page
//   state {states, seconds}    wait until body.dataset.replayState is one of states;
//                              value: {state, time, loaded} (loaded: events loading still)
//   time {min, seconds}        wait until dataset.replayTime >= min; value: the time
//   text {text, seconds}       wait until the replay iframe's document shows text;
//                              value: ms waited
//   click {selector}           click an element of the page
//   count {selector}           value: how many elements match in the page
//   texts {selector}           value: their text contents
//   screenshot {path}          save a PNG of the page
//   globals {}                 value: names the page's own scripts must not have set
// The page's JavaScript errors are collected and returned by every answer (pageErrors).
"use strict";

const path = require("path");
const readline = require("readline");

const config = JSON.parse(process.argv[2]);
const { chromium } = require(path.join(config.packages, "node_modules", "playwright-core"));
const pageErrors = [];
const consoleLines = [];
let page;

// What the page shows now, for an answer that failed.
async function shown() {
  try {
    return await page.evaluate(() => ({
      state: document.body.dataset.replayState,
      time: document.body.dataset.replayTime,
      message: (document.getElementById("replay-message") || {}).textContent,
    }));
  } catch (error) {
    return String(error);
  }
}

const ops = {
  async open({ url, headers }) {
    await page.setExtraHTTPHeaders(headers || {});
    const response = await page.goto(url, { waitUntil: "domcontentloaded" });
    return response ? response.status() : 0;
  },
  async state({ states, seconds }) {
    await page.waitForFunction(
      (wanted) => wanted.includes(document.body.dataset.replayState),
      states,
      { timeout: seconds * 1000, polling: 100 },
    );
    return page.evaluate(() => ({
      state: document.body.dataset.replayState,
      time: Number(document.body.dataset.replayTime),
      loaded: document.getElementById("replay-loaded").textContent,
    }));
  },
  async time({ min, seconds }) {
    await page.waitForFunction((least) => Number(document.body.dataset.replayTime) >= least, min, {
      timeout: seconds * 1000,
      polling: 100,
    });
    return page.evaluate(() => Number(document.body.dataset.replayTime));
  },
  async text({ text, seconds }) {
    const started = Date.now();
    await page.waitForFunction(
      (wanted) => {
        const frame = document.querySelector("#replay-player iframe");
        const doc = frame && frame.contentDocument;
        return Boolean(doc && doc.body && doc.body.textContent.includes(wanted));
      },
      text,
      { timeout: seconds * 1000, polling: 50 },
    );
    return Date.now() - started;
  },
  async click({ selector }) {
    await page.click(selector);
    return selector;
  },
  async count({ selector }) {
    return page.locator(selector).count();
  },
  async texts({ selector }) {
    return page.locator(selector).allTextContents();
  },
  async screenshot({ path: file }) {
    await page.screenshot({ path: file, fullPage: true });
    return file;
  },
  async globals() {
    return page.evaluate(() => Object.keys(window).filter((name) => name.startsWith("__pwned")));
  },
};

async function main() {
  const browser = await chromium.launch({ executablePath: config.chromium });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => consoleLines.push(`${message.type()}: ${message.text()}`));
  page.on("requestfailed", (request) => consoleLines.push(`failed: ${request.url()}`));
  const lines = readline.createInterface({ input: process.stdin });
  process.stdout.write(JSON.stringify({ ok: true, value: "ready" }) + "\n");
  for await (const line of lines) {
    const request = JSON.parse(line);
    let answer;
    try {
      answer = { ok: true, value: await ops[request.op](request) };
    } catch (error) {
      const error_ = String((error && error.message) || error);
      answer = { ok: false, error: error_, shown: await shown(), console: consoleLines.slice(-20) };
    }
    answer.pageErrors = pageErrors;
    process.stdout.write(JSON.stringify(answer) + "\n");
  }
  await browser.close();
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error) + "\n");
  process.exit(1);
});
