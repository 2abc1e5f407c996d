// The demo page in headless Chromium: it loads without console errors, and its story runs
// (register and log in, upgrade the plan, an admin changes the role → the user panel
// shows the refreshed claims, the admin disables the user → logged out). With
// DEMO_SCREENSHOT set (tests/api/clients/js_client.rs sets it from
// CLAIMD_DEMO_SCREENSHOT) the page is photographed after the role change.
import { test, after } from "node:test";
import assert from "node:assert/strict";

import { BASE } from "../test/helpers.js";
import { collectErrors, launch, unexpected } from "./chromium.js";

const browser = await launch();
after(() => browser.close());

const text = (page, selector) => page.$eval(selector, (el) => el.textContent);
async function waitText(page, selector, wanted) {
  try {
    await page.waitForFunction(
      (selector, wanted) => document.querySelector(selector)?.textContent.includes(wanted),
      { timeout: 15000 },
      selector,
      wanted,
    );
  } catch (err) {
    const now = await page.$eval(selector, (el) => el.textContent).catch(() => "(absent)");
    const log = await page.$eval("body", (el) => el.innerText).catch(() => "");
    throw new Error(`${selector} never showed ${JSON.stringify(wanted)}; it shows ${JSON.stringify(now)}\n${log}`, { cause: err });
  }
}
const enabled = (page, selector) =>
  page.waitForFunction((selector) => !document.querySelector(selector)?.disabled, { timeout: 15000 }, selector);

test("the demo page tells the story without a reload and without console errors", async () => {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 860 });
  const errors = collectErrors(page);

  // The URL claimd printed at start-up: its fragment carries the demo key.
  const response = await page.goto(process.env.CLAIMD_DEMO_URL ?? `${BASE}/demo`, { waitUntil: "networkidle0" });
  assert.equal(response.status(), 200);
  await waitText(page, "#admin-status", "signed in as demo-admin");
  assert.deepEqual(errors, [], "the page loads without console errors");

  await page.click("#register");
  await waitText(page, "#user-status", "logged in");
  await waitText(page, "#claims", '"plan": "free"');
  await waitText(page, "#expiry", "token expires in");

  await enabled(page, "#upgrade");
  await page.click("#upgrade");
  await waitText(page, "#claims", '"plan": "pro"');
  await waitText(page, "#user-log", "refresh-on-change");

  await enabled(page, "#set-role");
  await page.select("#role", "editor");
  await page.click("#set-role");
  await waitText(page, "#claims", '"roles": ["editor"]');
  await waitText(page, "#user-log", "token_stale → refreshed");
  assert.match(await text(page, "#user-log"), /GET \/me → 401 token_stale/);
  assert.match(await text(page, "#claims"), /"plan": "pro"/, "the upgrade survived the refresh");
  assert.ok(await page.$("#claims .changed"), "the changed claim is highlighted");
  if (process.env.DEMO_SCREENSHOT) {
    await page.screenshot({ path: process.env.DEMO_SCREENSHOT, fullPage: true });
  }

  await page.click("#disable");
  await waitText(page, "#user-status", "logged out");
  await waitText(page, "#user-log", "session revoked");
  assert.equal(await text(page, "#claims"), "—");
  assert.equal(await page.evaluate(() => performance.getEntriesByType("navigation").length), 1, "no reload");

  assert.deepEqual(unexpected(errors), []);
});
