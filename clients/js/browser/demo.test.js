// The demo page in headless Chromium: it loads without console errors, and its story runs
// (register with an address and log in, verify it from the mailbox → the claims say so,
// upgrade the plan, an admin changes the role → the user panel shows the refreshed claims,
// log out, reset the password and sign in by link from the mailbox, the admin disables the
// user → logged out). With DEMO_SCREENSHOT and DEMO_SCREENSHOT_PHONE set
// (tests/api/clients/js_client.rs sets them from CLAIMD_DEMO_SCREENSHOT) the page is
// photographed at the end, on a desktop and on a phone.
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
// Waits for the mailbox to show an unused mail with a `purpose` link and presses its button.
async function openLink(page, purpose) {
  const selector = `#mails button.open-${purpose}:not([disabled])`;
  try {
    await page.waitForSelector(selector, { timeout: 15000 });
  } catch (err) {
    const box = await page.$eval("#mailbox", (el) => el.innerText).catch(() => "(absent)");
    throw new Error(`no ${purpose} link in the mailbox:\n${box}`, { cause: err });
  }
  await page.click(selector);
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

  await waitText(page, "#mailbox-status", "no mail yet");
  const email = await page.$eval("#email", (el) => el.value);

  await page.click("#register");
  await waitText(page, "#user-status", "logged in");
  await waitText(page, "#claims", '"plan": "free"');
  await waitText(page, "#claims", `"email": "${email}"`);
  await waitText(page, "#claims", '"email_verified": false');
  await waitText(page, "#expiry", "token expires in");

  // Verification: the mail arrives in the mailbox; its link verifies, and the session
  // refreshes to a token that says so.
  await enabled(page, "#send-verification");
  await page.click("#send-verification");
  await openLink(page, "verify-email");
  await waitText(page, "#claims", '"email_verified": true');
  await waitText(page, "#user-log", `verified ${email}`);

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

  // Locked out: a reset link from the mailbox sets a new password and signs in again,
  // and a sign-in link does too.
  await page.click("#logout-all");
  await waitText(page, "#user-status", "logged out");
  await page.click("#forgot");
  await openLink(page, "reset-password");
  await waitText(page, "#user-status", "logged in");
  await waitText(page, "#user-log", "password reset");
  await waitText(page, "#claims", '"roles": ["editor"]');
  await page.click("#magic");
  await openLink(page, "magic");
  await waitText(page, "#user-log", "signed in by link");
  await waitText(page, "#mailbox-status", "3 mails");
  assert.equal(await page.$$eval("#mails .mail.used", (used) => used.length), 3, "each link used once");
  if (process.env.DEMO_SCREENSHOT) {
    await page.screenshot({ path: process.env.DEMO_SCREENSHOT, fullPage: true });
  }
  if (process.env.DEMO_SCREENSHOT_PHONE) {
    // A phone's width; not `isMobile`, whose change makes puppeteer reload the page.
    await page.setViewport({ width: 390, height: 844, deviceScaleFactor: 2 });
    await page.screenshot({ path: process.env.DEMO_SCREENSHOT_PHONE, fullPage: true });
    await page.setViewport({ width: 1280, height: 860 });
  }

  await page.click("#disable");
  await waitText(page, "#user-status", "logged out");
  await waitText(page, "#user-log", "session revoked");
  assert.equal(await text(page, "#claims"), "—");
  assert.equal(await page.evaluate(() => performance.getEntriesByType("navigation").length), 1, "no reload");

  assert.deepEqual(unexpected(errors), []);
});
