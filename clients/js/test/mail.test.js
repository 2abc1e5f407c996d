// The client's mail methods against a live claimd whose mails go to an outbox directory
// (CLAIMD_OUTBOX, set by tests/api/clients/js_client.rs): each test asks for a mail, reads
// the link's token out of the .eml file claimd wrote, and redeems it through the client.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";

import { ClaimdClient, ClaimdError } from "../src/claimd.js";
import { BASE, PASSWORD, uniqueName } from "./helpers.js";

const OUTBOX = process.env.CLAIMD_OUTBOX;
if (!OUTBOX) throw new Error("CLAIMD_OUTBOX is not set: run these through `cargo test --test api js_client`");

/** The files of the outbox (none before the first mail). */
async function outboxFiles() {
  try {
    return (await readdir(OUTBOX)).filter((name) => name.endsWith(".eml"));
  } catch (err) {
    if (err.code === "ENOENT") return [];
    throw err;
  }
}

/**
 * The token of the `purpose` link in the mail to `to`, once claimd's sender has written it
 * (the request answered 202 before the mail left). The built-in templates are 7bit, so the
 * link is whole in the file.
 */
async function mailedToken(to, purpose) {
  const link = new RegExp(`/account/${purpose}#token=([A-Za-z0-9_-]+)`);
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    for (const name of await outboxFiles()) {
      const raw = await readFile(join(OUTBOX, name), "utf8");
      const [head] = raw.split("\r\n\r\n");
      const found = link.exec(raw);
      if (found && new RegExp(`^To: ${to}\r?$`, "m").test(head)) return found[1];
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`no ${purpose} mail to ${to} in ${OUTBOX}: ${(await outboxFiles()).join(", ")}`);
}

/** A fresh account with an address, signed in. */
async function signedUpWithEmail(prefix) {
  const client = new ClaimdClient({ baseUrl: BASE });
  const username = uniqueName(prefix);
  const email = `${username}@example.org`;
  const user = await client.register(username, PASSWORD, { email });
  await client.login(username, PASSWORD);
  return { client, user, username, email };
}

const rejectsWith = (promise, code) =>
  assert.rejects(promise, (err) => {
    assert.ok(err instanceof ClaimdError, String(err));
    assert.equal(err.code, code);
    return true;
  });

test("requestEmailVerification and verifyEmail: the client's token then says email_verified", async () => {
  const { client, user, email } = await signedUpWithEmail("verify");
  assert.equal(client.claims.email, email);
  assert.equal(client.claims.email_verified, false);
  const reasons = [];
  client.onChange((event) => reasons.push(event.reason));

  await client.requestEmailVerification();
  const token = await mailedToken(email, "verify-email");
  const verified = await client.verifyEmail(token);

  assert.equal(verified.id, user.id);
  assert.equal(verified.email_verified, true);
  assert.equal(client.claims.email_verified, true, "the client refreshed to a token that says so");
  assert.deepEqual(reasons, ["refresh"]);
  await rejectsWith(client.verifyEmail(token), "link_invalid");
});

test("requestEmailVerification without a session rejects", async () => {
  const client = new ClaimdClient({ baseUrl: BASE });

  await assert.rejects(client.requestEmailVerification(), ClaimdError);
});

test("requestPasswordReset and resetPassword: signed in anew, every other session ended", async () => {
  const { client: elsewhere, user, username, email } = await signedUpWithEmail("reset");
  const client = new ClaimdClient({ baseUrl: BASE });
  const reasons = [];
  elsewhere.onChange((event) => reasons.push(event.reason));

  await client.requestPasswordReset(email);
  const token = await mailedToken(email, "reset-password");
  const claims = await client.resetPassword(token, "a new passphrase for the js client");

  assert.equal(claims.sub, user.id);
  const me = await client.fetch("/me");
  assert.equal(me.status, 200);
  const revoked = await elsewhere.fetch("/me");
  assert.equal(revoked.status, 401);
  assert.equal(elsewhere.claims, null, "the other session ended");
  assert.deepEqual(reasons, ["revoked"]);
  await rejectsWith(new ClaimdClient({ baseUrl: BASE }).login(username, PASSWORD), "invalid_credentials");
  await new ClaimdClient({ baseUrl: BASE }).login(username, "a new passphrase for the js client");
  await rejectsWith(client.resetPassword(token, "yet another passphrase here"), "link_invalid");
});

test("requestMagicLink and redeemMagicLink: signed in once, the link then spent", async () => {
  const { user, email } = await signedUpWithEmail("magic");
  const client = new ClaimdClient({ baseUrl: BASE });

  await client.requestMagicLink(email);
  const token = await mailedToken(email, "magic");
  const claims = await client.redeemMagicLink(token);

  assert.equal(claims.sub, user.id);
  assert.equal(client.claims.sub, user.id);
  await rejectsWith(new ClaimdClient({ baseUrl: BASE }).redeemMagicLink(token), "link_invalid");
});

test("requests for an unknown address resolve as for a known one, and mail nothing", async () => {
  const client = new ClaimdClient({ baseUrl: BASE });
  const nobody = `${uniqueName("nobody")}@example.org`;
  const before = (await outboxFiles()).length;

  await client.requestPasswordReset(nobody);
  await client.requestMagicLink(nobody);

  await rejectsWith(client.requestPasswordReset("not an address"), "invalid_request");
  assert.equal(client.claims, null);
  // Give the sender the time a mail takes, then look for one to that address.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  for (const name of await outboxFiles()) {
    assert.doesNotMatch(await readFile(join(OUTBOX, name), "utf8"), new RegExp(nobody));
  }
  assert.ok((await outboxFiles()).length >= before);
});
