// Headless Chromium for the browser tests: Debian's chromium (CHROMIUM_PATH, default
// /usr/bin/chromium) driven by puppeteer-core, which downloads no browser.
import puppeteer from "puppeteer-core";

export async function launch() {
  return puppeteer.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    headless: true,
    // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
}

/** Collects console errors and uncaught page errors, for "loads without errors". */
export function collectErrors(page) {
  const errors = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()} (${message.location()?.url ?? ""})`);
  });
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("requestfailed", (request) => {
    // Chromium reports a fetch answered 204 No Content as failed (net::ERR_ABORTED) once
    // the answer is in, though the page got it whole.
    if (request.response()?.status() === 204) return;
    errors.push(`requestfailed: ${request.url()} ${request.failure()?.errorText}`);
  });
  return errors;
}

/**
 * The errors that are not the story's own: Chromium logs every 4xx answer as "Failed to
 * load resource", and a 401 token_stale or token_revoked is what these pages are about;
 * a page without a favicon link makes Chromium ask for /favicon.ico.
 */
export function unexpected(errors) {
  return errors.filter(
    (e) => !/Failed to load resource: the server responded with a status of 401/.test(e) && !e.includes("/favicon.ico"),
  );
}
