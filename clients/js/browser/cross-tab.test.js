// Two tabs of one origin in cookie mode (the refresh token in claimd's HttpOnly cookie,
// shared by both) meet a stale token at the same moment: exactly one refresh reaches
// claimd, and both tabs carry on with the new claims. A session that is not the cookie's
// (a token adopted with useTokens) is never offered to another tab. Run by
// tests/api/clients/js_client.rs against a claimd with tokens.refresh_cookie on and its
// issuer on the page's origin.
import { test, after } from "node:test";
import assert from "node:assert/strict";

import { BASE, PASSWORD, adminCall, adminClient, refreshesCounted, uniqueName } from "../test/helpers.js";
import { collectErrors, launch, unexpected } from "./chromium.js";

const browser = await launch();
after(() => browser.close());

/** A tab on claimd's origin with a ClaimdClient as window.claimd and a refresh counter. */
async function openTab(context = browser) {
  const page = await context.newPage();
  const errors = collectErrors(page);
  // Any page of the origin will do; /healthz has no favicon link, so Chromium asks for one.
  await page.goto(`${BASE}/healthz`);
  errors.length = 0;
  await page.evaluate(async () => {
    const { ClaimdClient } = await import("/demo/claimd.js");
    window.refreshes = 0;
    const counting = (input, init) => {
      if (String(input).endsWith("/auth/refresh-token")) window.refreshes += 1;
      return fetch(input, init);
    };
    // A loaded CI machine may take a while to deliver a message between tabs; a late one
    // would cost a second refresh, which is what this test counts.
    window.claimd = new ClaimdClient({ baseUrl: "", fetch: counting, crossTabWaitMs: 15000 });
    window.reasons = [];
    window.claimd.onChange((event) => window.reasons.push(event.reason));
  });
  return { page, errors };
}

test("two tabs on a stale token share one refresh of the cookie", async () => {
  const username = uniqueName("tabs");
  const a = await openTab();
  const b = await openTab();
  const cookieMode = await a.page.evaluate(async (username, password) => {
    await window.claimd.register(username, password);
    await window.claimd.login(username, password);
    return window.claimd.cookieMode;
  }, username, PASSWORD);
  assert.equal(cookieMode, true, "claimd answered the login without a refresh token");
  // Tab B has no token of its own: it resumes the session from the shared cookie.
  const resumed = await b.page.evaluate(async () => (await window.claimd.refresh()).jti);
  // Resuming spent the cookie, so tab A's refresh token is now tab B's: A adopts the token
  // B shared. Wait for that message here, so the race below starts from one token in both
  // tabs (the client copes with a late one too, at the cost of a second refresh).
  await a.page.waitForFunction((jti) => window.claimd.claims?.jti === jti, { timeout: 15000 }, resumed);
  const sids = await Promise.all([a, b].map((t) => t.page.evaluate(() => window.claimd.claims.sid)));
  assert.equal(sids[0], sids[1], "tab B resumed tab A's session");
  const userId = await a.page.evaluate(() => window.claimd.claims.sub);
  const admin = await adminClient();
  await adminCall(admin, "PATCH", `/admin/users/${userId}`, { plan: "enterprise", roles: ["editor"] });
  const before = await refreshesCounted();
  const refreshesBefore = await Promise.all([a, b].map((t) => t.page.evaluate(() => window.refreshes)));

  const call = (tab) =>
    tab.page.evaluate(async () => {
      const response = await window.claimd.fetch("/me");
      return { status: response.status, plan: (await response.json()).claims?.plan };
    });
  const answers = await Promise.all([call(a), call(b)]);

  assert.deepEqual(answers, [
    { status: 200, plan: "enterprise" },
    { status: 200, plan: "enterprise" },
  ]);
  const refreshesAfter = await Promise.all([a, b].map((t) => t.page.evaluate(() => window.refreshes)));
  const sent = refreshesAfter[0] - refreshesBefore[0] + refreshesAfter[1] - refreshesBefore[1];
  assert.equal(sent, 1, "the two tabs sent one refresh between them");
  assert.equal((await refreshesCounted()) - before, 1, "claimd saw one refresh");
  for (const tab of [a, b]) {
    const claims = await tab.page.evaluate(() => window.claimd.claims);
    assert.equal(claims.plan, "enterprise");
    assert.deepEqual(claims.roles, ["editor"]);
  }
  // And the session goes on: both tabs' next calls succeed without another refresh.
  assert.deepEqual(await Promise.all([call(a), call(b)]), answers);
  assert.equal((await refreshesCounted()) - before, 1);
  assert.deepEqual(unexpected([...a.errors, ...b.errors]), []);
});

test("a session that is not the cookie's stays in its own tab", async () => {
  const context = await browser.createBrowserContext();
  try {
    const a = await openTab(context);
    const b = await openTab(context);
    const admin = await adminClient();
    // Tab A adopts a token it got elsewhere (no refresh token, no cookie), as the demo's
    // admin panel does, and refreshes it with itself as Bearer.
    const token = admin.accessToken;
    const refreshed = await a.page.evaluate(async (token) => {
      window.claimd.useTokens({ access_token: token, token_type: "Bearer", expires_in: 900 });
      await window.claimd.refresh();
      return window.claimd.accessToken !== token;
    }, token);
    assert.equal(refreshed, true);
    await new Promise((resolve) => setTimeout(resolve, 300));

    const seen = await b.page.evaluate(() => ({ claims: window.claimd.claims, reasons: window.reasons }));

    assert.deepEqual(seen, { claims: null, reasons: [] }, "tab B never received tab A's token");
  } finally {
    await context.close();
  }
});
