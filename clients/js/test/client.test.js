// The client against a live claimd (started by tests/api/clients/js_client.rs): login, a
// claim change made by an admin seen through client.fetch, single-flight refresh,
// revocation.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ClaimdClient, ClaimdError, decodeClaims } from "../src/claimd.js";
import { BASE, PASSWORD, adminCall, adminClient, refreshesCounted, signedUp, uniqueName } from "./helpers.js";

test("login keeps the access token in memory, exposes its claims and tells onChange", async () => {
  const client = new ClaimdClient({ baseUrl: BASE });
  const username = uniqueName("login");
  const user = await client.register(username, PASSWORD);
  const events = [];
  client.onChange((event) => events.push(event));

  const claims = await client.login(username, PASSWORD);

  assert.equal(claims.sub, user.id);
  assert.equal(client.claims.sub, user.id);
  assert.equal(client.cookieMode, false, "claimd's default answers the refresh token in the body");
  assert.deepEqual(events.map((e) => e.reason), ["login"]);
  const me = await client.fetch("/me");
  assert.equal(me.status, 200);
  assert.equal((await me.json()).user.username, username);
});

test("a wrong password rejects with the problem's code", async () => {
  const client = new ClaimdClient({ baseUrl: BASE });
  await assert.rejects(client.login(uniqueName("nobody"), PASSWORD), (err) => {
    assert.ok(err instanceof ClaimdError);
    assert.equal(err.status, 401);
    assert.equal(err.code, "invalid_credentials");
    return true;
  });
  assert.equal(client.claims, null);
});

test("an admin's role change reaches the user through fetch: token_stale, one refresh, retried", async () => {
  const { client, user, fetch } = await signedUp("stale");
  const admin = await adminClient();
  const reasons = [];
  client.onChange((event) => reasons.push(event.reason));

  await adminCall(admin, "PATCH", `/admin/users/${user.id}`, { roles: ["editor"], plan: "pro" });
  const response = await client.fetch("/me");

  assert.equal(response.status, 200, "the stale answer was not handed back");
  const body = await response.json();
  assert.deepEqual(body.claims.roles, ["editor"]);
  assert.equal(body.claims.plan, "pro");
  assert.deepEqual(client.claims.roles, ["editor"]);
  assert.equal(client.claims.plan, "pro");
  assert.equal(fetch.count("/auth/refresh-token"), 1);
  assert.equal(fetch.count("/me"), 2, "the request was sent once stale and retried once");
  assert.deepEqual(reasons, ["refresh"]);
});

test("ten concurrent fetch calls on a stale token share exactly one refresh", async () => {
  const { client, user, fetch } = await signedUp("flight");
  const admin = await adminClient();
  await adminCall(admin, "PATCH", `/admin/users/${user.id}`, { plan: "enterprise" });
  const before = await refreshesCounted();

  const responses = await Promise.all(Array.from({ length: 10 }, () => client.fetch("/me")));

  assert.deepEqual(responses.map((r) => r.status), Array(10).fill(200));
  for (const response of responses) assert.equal((await response.json()).claims.plan, "enterprise");
  assert.equal(fetch.count("/auth/refresh-token"), 1, "the client sent one refresh");
  assert.equal((await refreshesCounted()) - before, 1, "the server saw one refresh");
});

test("updateMe adopts the token claimd answers with and reports the change", async () => {
  const { client, fetch } = await signedUp("upgrade");
  const events = [];
  client.onChange((event) => events.push(event));

  const user = await client.updateMe({ plan: "pro" });

  assert.equal(user.plan, "pro");
  assert.equal(client.claims.plan, "pro");
  assert.equal(events.at(-1).previous.plan, "free");
  assert.equal(events.at(-1).claims.plan, "pro");
  assert.equal(fetch.count("/auth/refresh-token"), 0, "refresh-on-change needs no refresh");
  assert.equal((await client.fetch("/me")).status, 200);
});

test("revocation by an admin ends the session and fires onChange", async () => {
  const { client, user } = await signedUp("revoked");
  const admin = await adminClient();
  const events = [];
  client.onChange((event) => events.push(event));

  await adminCall(admin, "POST", `/admin/users/${user.id}/revoke`);
  const response = await client.fetch("/me");

  assert.equal(response.status, 401);
  assert.equal((await response.json()).code, "token_revoked");
  assert.equal(client.claims, null);
  assert.equal(client.accessToken, null);
  assert.deepEqual(events.map((e) => e.reason), ["revoked"]);
  assert.equal(events[0].previous.sub, user.id);
});

test("a refresh token that no longer works (invalid_grant) ends the session", async () => {
  const { client, user } = await signedUp("grant");
  const admin = await adminClient();
  const events = [];
  client.onChange((event) => events.push(event));
  await adminCall(admin, "POST", `/admin/users/${user.id}/revoke`);

  await assert.rejects(client.refresh(), (err) => ["invalid_grant", "token_revoked"].includes(err.code));

  assert.equal(client.claims, null);
  assert.deepEqual(events.map((e) => e.reason), ["revoked"]);
});

test("logoutAll ends the session on the server", async () => {
  const { client } = await signedUp("logout");
  const token = client.accessToken;

  await client.logoutAll();

  assert.equal(client.claims, null);
  const after = await fetch(`${BASE}/me`, { headers: { Authorization: `Bearer ${token}` } });
  assert.equal(after.status, 401);
  assert.equal((await after.json()).code, "token_revoked");
});

test("X-Refreshed-Token on any answer replaces the token", async () => {
  const { client } = await signedUp("header");
  const old = client.accessToken;
  const response = await client.fetch("/me", {
    method: "PATCH",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ plan: "gold" }),
  });
  assert.equal(response.status, 200);
  assert.notEqual(client.accessToken, old);
  assert.equal(client.accessToken, response.headers.get("x-refreshed-token"));
  assert.equal(decodeClaims(client.accessToken).plan, "gold");
});

test("outside a browser a relative baseUrl is refused with a clear error", () => {
  assert.throws(() => new ClaimdClient({ baseUrl: "/" }), /baseUrl must be an absolute URL/);
  assert.throws(() => new ClaimdClient(), /baseUrl must be an absolute URL/);
});

test("logout ends the session with the refresh token when the access token proves nothing", async () => {
  const username = uniqueName("proof");
  const client = new ClaimdClient({ baseUrl: BASE });
  await client.register(username, PASSWORD);
  const login = await fetch(`${BASE}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password: PASSWORD }),
  });
  const tokens = await login.json();
  // The access token with its signature spoiled: claimd refuses it, so only the refresh
  // token the client sends beside it can prove the session.
  const spoiled = tokens.access_token.replace(/.$/, (c) => (c === "A" ? "B" : "A"));
  client.useTokens({ ...tokens, access_token: spoiled }, "login");

  await client.logout();

  assert.equal(client.claims, null);
  const again = await fetch(`${BASE}/auth/refresh-token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: tokens.refresh_token }),
  });
  assert.equal(again.status, 400, "the session ended on claimd");
});

test("a logout claimd did not carry out rejects and keeps the session", async () => {
  const { client } = await signedUp("failed-logout");
  const before = client.accessToken;
  const failing = new ClaimdClient({
    baseUrl: BASE,
    fetch: async () => new Response(JSON.stringify({ status: 503, code: "storage_unavailable" }), {
      status: 503,
      headers: { "content-type": "application/problem+json" },
    }),
  });
  failing.useTokens({ access_token: before, token_type: "Bearer" }, "login");

  await assert.rejects(failing.logout(), (err) => err instanceof ClaimdError && err.status === 503);

  assert.equal(failing.accessToken, before, "the session is kept here");
  assert.notEqual(client.claims, null);
});
