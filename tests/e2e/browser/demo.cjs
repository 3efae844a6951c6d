// The demo page of the capture endpoint (`GET /`) in headless Chromium (playwright-core),
// driven as a new user would: click its buttons, type, call the console.
//
//   node demo.cjs '<json>'  with {packages, chromium, page, report, screenshot, seconds,
//                                 phases: [{clicks, buttons, text, console, expect}]}
//
// Without phases it only reads what the page says (#status). With phases it waits until
// the page's first upload succeeded, then for each phase: clicks "Click me" `clicks`
// times, clicks each button id of `buttons`, types `text` into the text field, makes each
// console call of `console` ([level, ...args]) in the page, and waits (up to `seconds`)
// until the summary table the page shows holds `expect` (name -> value as shown). After
// the last phase it takes a screenshot. The report holds the status line and, per phase,
// the table as the page last showed it, whether or not it matched: the test judges.
"use strict";

const fs = require("fs");
const path = require("path");

const config = JSON.parse(process.argv[2]);
const { chromium } = require(path.join(config.packages, "node_modules", "playwright-core"));
const deadline = (config.seconds || 60) * 1000;
const report = { status: "", session: "", shown: [], pageErrors: [], controlsDisabled: false };

// The summary table as the page shows it: field name (the row's data-field) -> the
// value's text.
function shownTable() {
  const shown = {};
  for (const row of document.getElementById("summary").rows) {
    if (row.dataset.field) shown[row.dataset.field] = row.cells[1].textContent;
  }
  return shown;
}

async function act(page, phase) {
  for (let i = 0; i < (phase.clicks || 0); i += 1) await page.click("#click");
  for (const id of phase.buttons || []) await page.click("#" + id);
  if (phase.text) {
    await page.click("#text");
    await page.keyboard.type(phase.text);
  }
  for (const [level, ...args] of phase.console || []) {
    await page.evaluate(([name, values]) => console[name](...values), [level, args]);
  }
}

// Wait (polling the DOM, up to the deadline) until the table shows `expect`; report
// what it showed last either way.
async function settle(page, expect) {
  const matches = (wanted) => {
    const shown = window.__demoShown();
    return Object.entries(wanted).every(([name, value]) => shown[name] === value);
  };
  try {
    await page.waitForFunction(matches, expect, { timeout: deadline, polling: 200 });
  } catch (error) {
    if (error.name !== "TimeoutError") throw error;
  }
  report.shown.push(await page.evaluate(() => window.__demoShown()));
}

async function run(page) {
  await page.goto(config.page);
  const status = page.locator("#status");
  if (config.phases && config.phases.length) {
    // The first upload answered 200: recording works; the status names the session.
    await page.waitForFunction(
      () => /last upload 200/.test(document.getElementById("status").textContent),
      null,
      { timeout: deadline },
    );
    for (const phase of config.phases) {
      await act(page, phase);
      await settle(page, phase.expect);
    }
  }
  report.status = (await status.textContent()) || "";
  report.controlsDisabled = await page.evaluate(() =>
    [...document.querySelectorAll("button, input")].every((control) => control.disabled),
  );
  report.session = (/session (\S+):/.exec(report.status) || ["", ""])[1];
  await page.screenshot({ path: config.screenshot, fullPage: true });
}

const watchdog = setTimeout(() => {
  process.stderr.write("the demo journey did not finish in time\n");
  process.exit(2);
}, deadline * ((config.phases || []).length + 2));

async function main() {
  const browser = await chromium.launch({ executablePath: config.chromium });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    await page.addInitScript(`window.__demoShown = ${shownTable.toString()};`);
    page.on("pageerror", (error) => report.pageErrors.push(error.message));
    await run(page);
    fs.writeFileSync(config.report, JSON.stringify(report));
    clearTimeout(watchdog);
  } finally {
    await browser.close();
  }
}

main().catch((error) => {
  process.stderr.write(String((error && error.stack) || error) + "\n");
  process.exit(1);
});
