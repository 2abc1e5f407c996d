// The demo page's script (served as /demo/demo.js; the CSP allows no inline script).
// Panel 1 is a user session held by ClaimdClient; panel 2 an admin session from
// /demo/admin-session. The user panel calls GET /me every few seconds, as an app would,
// so the admin's changes show up through the client without a reload. Panel 3 lists the
// outbox (GET /demo/mailbox, with the demo key) and redeems a mail's link for panel 1's user.
import { ClaimdClient } from "/demo/claimd.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;
const MAILBOX_POLL_MS = 1500;
const SHOWN = ["sub", "email", "email_verified", "roles", "plan", "attrs", "tid", "uv", "tv", "sid", "jti", "iat", "exp"];

function log(list, text, kind = "") {
  const item = document.createElement("li");
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  if (kind) item.className = kind;
  list.prepend(item);
}

// A fetch that writes each request the client makes, with the problem code of a 401.
function loggingFetch(list) {
  return async (input, init = {}) => {
    const url = new URL(input instanceof Request ? input.url : String(input), location.href);
    const method = (init.method ?? "GET").toUpperCase();
    const response = await fetch(input, init);
    let note = "";
    if (!response.ok) {
      try {
        note = ` ${(await response.clone().json()).code ?? ""}`;
      } catch {
        note = "";
      }
    }
    const refreshed = response.headers.get("X-Refreshed-Token") ? " + X-Refreshed-Token" : "";
    log(list, `${method} ${url.pathname} → ${response.status}${note}${refreshed}`, response.ok ? "good" : "bad");
    return response;
  };
}

// ---- panel 1: the user ----

const userLog = $("user-log");
const user = new ClaimdClient({ baseUrl: "", fetch: loggingFetch(userLog) });
let changedKeys = new Set();

function renderClaims(claims) {
  const box = $("claims");
  box.textContent = "";
  if (!claims) {
    box.textContent = "—";
    return;
  }
  box.append("{\n");
  for (const key of SHOWN.filter((k) => k in claims)) {
    const line = document.createElement("span");
    line.textContent = `  "${key}": ${JSON.stringify(claims[key])}`;
    if (changedKeys.has(key)) line.className = "changed";
    box.append(line, ",\n");
  }
  box.append("}");
}

function renderUserState() {
  const claims = user.claims;
  const badge = $("user-status");
  badge.textContent = claims ? `logged in as ${$("username").value}` : "logged out";
  badge.className = claims ? "badge" : "badge off";
  for (const id of ["upgrade", "call-me", "logout-all", "send-verification"]) $(id).disabled = !claims;
  $("register").disabled = Boolean(claims);
  for (const id of ["set-role", "set-plan", "disable"]) $(id).disabled = !claims || !admin.claims;
  document.body.dataset.user = claims ? "in" : "out";
}

function tick() {
  const claims = user.claims;
  if (!claims) {
    $("expiry").textContent = "";
    return;
  }
  const left = Math.max(0, claims.exp - Math.floor(Date.now() / 1000));
  const mm = String(Math.floor(left / 60)).padStart(2, "0");
  const ss = String(left % 60).padStart(2, "0");
  $("expiry").textContent = `token expires in ${mm}:${ss}`;
}

const REASONS = {
  login: "logged in: new session",
  refresh: "token_stale → refreshed with current claims, request retried",
  "refreshed-token": "adopted X-Refreshed-Token",
  update: "PATCH /me answered with a new token (refresh-on-change)",
  logout: "logged out",
  revoked: "session revoked → logged out, no reload",
};

user.onChange(({ reason, claims, previous }) => {
  changedKeys = new Set();
  if (claims && previous) {
    for (const key of SHOWN) {
      if (JSON.stringify(claims[key]) !== JSON.stringify(previous[key]) && !["jti", "iat", "exp"].includes(key)) {
        changedKeys.add(key);
      }
    }
  }
  const changed = [...changedKeys].map((k) => `${k}: ${JSON.stringify(previous?.[k])} → ${JSON.stringify(claims?.[k])}`);
  log(userLog, `${REASONS[reason] ?? reason}${changed.length ? ` (${changed.join(", ")})` : ""}`, reason === "revoked" ? "bad" : "");
  renderClaims(claims);
  const token = user.accessToken;
  $("token").textContent = token ? `${token.slice(0, 28)}…${token.slice(-8)}` : "—";
  renderUserState();
  tick();
  // A disabled account makes way for a fresh one.
  if (reason === "revoked") freshAccount();
});

async function callMe() {
  if (!user.claims) return;
  try {
    await user.fetch("/me");
  } catch (err) {
    log(userLog, `GET /me failed: ${err.message}`, "bad");
  }
}

$("signup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = $("username").value;
  const password = $("password").value;
  const email = $("email").value.trim();
  try {
    await user.register(username, password, email ? { email } : {});
    log(userLog, `registered ${username}`, "good");
  } catch (err) {
    if (err.code !== "username_taken" && err.code !== "email_taken") {
      log(userLog, `register: ${err.message}`, "bad");
      return;
    }
  }
  try {
    await user.login(username, password);
  } catch (err) {
    log(userLog, `login: ${err.message}`, "bad");
  }
});

$("upgrade").addEventListener("click", async () => {
  try {
    await user.updateMe({ plan: "pro" });
  } catch (err) {
    log(userLog, `upgrade: ${err.message}`, "bad");
  }
});
$("call-me").addEventListener("click", callMe);
$("logout-all").addEventListener("click", async () => {
  try {
    await user.logoutAll();
  } catch (err) {
    log(userLog, `logout: ${err.message}`, "bad");
  }
});

// The mail buttons: each answers 202 at once; the mail shows up in panel 3.
async function mailRequest(what, send) {
  try {
    await send();
    log(userLog, `${what}: claimd answered 202, the mail is on its way`, "good");
    watchMailbox();
  } catch (err) {
    log(userLog, `${what}: ${err.message}`, "bad");
  }
}
$("send-verification").addEventListener("click", () =>
  mailRequest("verification mail", () => user.requestEmailVerification()),
);
$("forgot").addEventListener("click", () =>
  mailRequest("forgot password", () => user.requestPasswordReset($("email").value.trim())),
);
$("magic").addEventListener("click", () =>
  mailRequest("sign-in link", () => user.requestMagicLink($("email").value.trim())),
);

// ---- panel 2: the admin ----

const adminLog = $("admin-log");
const admin = new ClaimdClient({ baseUrl: "", fetch: loggingFetch(adminLog) });

// The demo key comes in the URL claimd printed at start-up (`/demo#key=…`): kept for this
// tab only, and taken out of the address bar so it is not bookmarked or shared.
const KEY_ITEM = "claimd-demo-key";
const fromUrl = new URLSearchParams(location.hash.slice(1)).get("key");
if (fromUrl) {
  sessionStorage.setItem(KEY_ITEM, fromUrl);
  history.replaceState(null, "", location.pathname + location.search);
}

async function adminSignIn() {
  const key = sessionStorage.getItem(KEY_ITEM) ?? "";
  const response = await fetch("/demo/admin-session", {
    method: "POST",
    headers: { "X-Requested-With": "claimd", "X-Demo-Key": key },
  });
  if (!response.ok) {
    const why = key ? `${response.status}` : "open the demo URL claimd printed at start-up (it carries the key)";
    log(adminLog, `admin sign-in refused: ${why}`, "bad");
    return;
  }
  admin.useTokens(await response.json());
  $("admin-status").textContent = "signed in as demo-admin";
  $("admin-status").className = "badge";
  renderUserState();
}

async function adminChange(body, what) {
  const id = user.claims?.sub;
  if (!id) return;
  const send = () =>
    admin.fetch(`/admin/users/${id}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  let response = await send();
  if (response.status === 401) {
    await adminSignIn();
    response = await send();
  }
  if (response.ok) {
    log(adminLog, `${what}: the user's token is now ${body.disabled ? "revoked" : "stale"}`, "good");
    // The user's app notices at its next request; make that now rather than at the poll.
    setTimeout(callMe, 300);
  }
}

$("set-role").addEventListener("click", () => {
  const role = $("role").value;
  adminChange({ roles: role ? [role] : [] }, `roles → [${role}]`);
});
$("set-plan").addEventListener("click", () => adminChange({ plan: "enterprise" }, "plan → enterprise"));
$("disable").addEventListener("click", () => adminChange({ disabled: true }, "disabled the user"));

// ---- panel 3: the mailbox ----

const LINK = /\/account\/(verify-email|reset-password|magic)#token=([A-Za-z0-9_-]+)/;
const ACTIONS = {
  "verify-email": {
    label: "Verify address",
    run: async (token) => {
      const verified = await user.verifyEmail(token);
      log(userLog, `verified ${verified.email}: the old token is stale, the new one says so`, "good");
    },
  },
  "reset-password": {
    label: "Set new password",
    run: async (token) => {
      const password = $("new-password").value;
      await user.resetPassword(token, password);
      $("password").value = password;
      log(userLog, "password reset: every other session ended, this one is new", "good");
    },
  },
  magic: {
    label: "Sign in with this link",
    run: async (token) => {
      await user.redeemMagicLink(token);
      log(userLog, "signed in by link", "good");
    },
  },
};
// The new password is used by a reset mail's button; Enter in its field sends nothing.
$("new-password-form").addEventListener("submit", (event) => event.preventDefault());
const usedMails = new Set();
let shownMails = "";

function renderMail(mail) {
  const item = document.createElement("li");
  item.className = usedMails.has(mail.id) ? "mail used" : "mail";
  item.dataset.id = mail.id;
  const title = document.createElement("h3");
  title.textContent = mail.subject;
  const meta = document.createElement("p");
  meta.className = "meta";
  const when = mail.date ? new Date(mail.date * 1000).toLocaleTimeString() : "";
  meta.textContent = `to ${mail.to.join(", ")} · ${when}`;
  const text = document.createElement("pre");
  text.textContent = mail.text;
  item.append(title, meta, text);
  const link = LINK.exec(mail.text);
  if (link) {
    const [, purpose, token] = link;
    const action = ACTIONS[purpose];
    const button = document.createElement("button");
    button.textContent = action.label;
    button.className = `open-${purpose}`;
    button.disabled = usedMails.has(mail.id);
    if (button.disabled) button.textContent = `${action.label}: used`;
    button.addEventListener("click", async () => {
      try {
        await action.run(token);
      } catch (err) {
        log(userLog, `${action.label}: ${err.code || err.message}`, "bad");
        return;
      }
      usedMails.add(mail.id);
      button.disabled = true;
      button.textContent = `${action.label}: used`;
      item.className = "mail used";
    });
    item.append(button);
  }
  return item;
}

async function pollMailbox() {
  const response = await fetch("/demo/mailbox", {
    headers: { "X-Requested-With": "claimd", "X-Demo-Key": sessionStorage.getItem(KEY_ITEM) ?? "" },
  });
  if (!response.ok) {
    $("mailbox-status").textContent = `the mailbox is not readable (${response.status}): open the demo URL claimd printed`;
    return;
  }
  const { transport, mails } = await response.json();
  if (transport !== "outbox") {
    $("mailbox-status").textContent =
      `mail.transport is "${transport}": start claimd with CLAIMD__MAIL__TRANSPORT=outbox to see its mails here`;
    return;
  }
  $("mailbox-status").textContent = mails.length ? `${mails.length} mail${mails.length > 1 ? "s" : ""}` : "no mail yet";
  const ids = mails.map((mail) => mail.id).join(",");
  if (ids === shownMails) return;
  shownMails = ids;
  $("mails").replaceChildren(...mails.map(renderMail));
}

// ---- start ----

function freshName() {
  return `alice-${Math.random().toString(36).slice(2, 6)}`;
}

function freshAccount() {
  const name = freshName();
  $("username").value = name;
  $("email").value = `${name}@example.org`;
}

freshAccount();
$("new-password").value = "a new passphrase for alice";
$("password").value = "correct horse battery staple";
renderClaims(null);
renderUserState();
setInterval(tick, 1000);
setInterval(callMe, POLL_MS);
adminSignIn().catch((err) => log(adminLog, `admin sign-in failed: ${err.message}`, "bad"));
const watchMailbox = () => pollMailbox().catch(() => {});
watchMailbox();
setInterval(watchMailbox, MAILBOX_POLL_MS);
