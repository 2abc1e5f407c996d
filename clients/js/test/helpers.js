// Shared by the tests: where claimd runs (CLAIMD_URL, set by
// tests/api/clients/js_client.rs), an admin session, unique usernames, and a fetch that
// counts refresh requests.
import { ClaimdClient } from "../src/claimd.js";

export const BASE = process.env.CLAIMD_URL;
if (!BASE) throw new Error("CLAIMD_URL is not set: run these through `cargo test --test api js_client`");
export const PASSWORD = "correct horse battery staple";

let counter = 0;
export function uniqueName(prefix) {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** A logged-in admin client (the bootstrap admin the Rust side started claimd with). */
export async function adminClient() {
  const admin = new ClaimdClient({ baseUrl: BASE });
  await admin.login(process.env.CLAIMD_ADMIN_USERNAME, process.env.CLAIMD_ADMIN_PASSWORD);
  return admin;
}

/** An admin request that must succeed; resolves to its JSON (or null for 204). */
export async function adminCall(admin, method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const response = await admin.fetch(path, init);
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.status === 204 ? null : response.json();
}

/** A fetch that records every URL path it sends, for counting refreshes. */
export function countingFetch() {
  const paths = [];
  const wrapped = (input, init) => {
    paths.push(new URL(input instanceof Request ? input.url : String(input)).pathname);
    return fetch(input, init);
  };
  wrapped.count = (path) => paths.filter((p) => p === path).length;
  return wrapped;
}

/** The sum of claimd_refreshes over its outcomes, from /metrics. */
export async function refreshesCounted() {
  const text = await (await fetch(`${BASE}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("claimd_refreshes"))
    .reduce((sum, line) => sum + Number(line.trim().split(/\s+/).pop()), 0);
}

/** Registers and logs in a fresh user; resolves to { client, user, fetch }. */
export async function signedUp(prefix) {
  const counted = countingFetch();
  const client = new ClaimdClient({ baseUrl: BASE, fetch: counted });
  const username = uniqueName(prefix);
  const user = await client.register(username, PASSWORD);
  await client.login(username, PASSWORD);
  return { client, user, fetch: counted, username };
}
