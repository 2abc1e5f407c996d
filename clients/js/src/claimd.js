// claimd client: log in, keep the access token in memory, and let `client.fetch` follow
// claim changes (X-Refreshed-Token, token_stale → one refresh → retry) and revocations.
// An ES module with no dependencies, for browsers and Node 20+ (global fetch). Served
// unchanged by claimd at /demo/claimd.js when the demo page is on.

const REFRESH_PATH = "/auth/refresh-token";
const REFRESHED_HEADER = "X-Refreshed-Token";
/** Sent on the requests that may carry the refresh cookie: claimd refuses them without it (CSRF). */
const REQUESTED_WITH = "claimd";
/** How long a tab that waited for another tab's refresh waits for its broadcast, by default. */
const SHARED_TOKEN_WAIT_MS = 2000;

/** A problem answer from claimd (RFC 9457), or a failure to reach it. */
export class ClaimdError extends Error {
  constructor(message, { status = 0, code = "", problem = null } = {}) {
    super(message);
    this.name = "ClaimdError";
    this.status = status;
    this.code = code;
    this.problem = problem;
  }
}

/** The claims of a JWT, decoded without verification (the server verifies; the client only reads). */
export function decodeClaims(token) {
  const part = typeof token === "string" ? token.split(".")[1] : undefined;
  if (!part) return null;
  try {
    const base64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const binary = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
    const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function absoluteBase(baseUrl) {
  const text = String(baseUrl ?? "");
  try {
    return new URL(text).href.replace(/\/+$/, "");
  } catch {
    // Relative: resolved against the page, which only a browser has.
  }
  const page = globalThis.location?.href;
  if (!page) {
    throw new TypeError(
      `ClaimdClient: baseUrl must be an absolute URL such as "http://127.0.0.1:8080" ` +
        `outside a browser (got ${JSON.stringify(text)}); a relative baseUrl is resolved ` +
        `against the page, and there is no page here`,
    );
  }
  return new URL(text || "/", page).href.replace(/\/+$/, "");
}

async function problemOf(response) {
  const type = response.headers.get("content-type") ?? "";
  if (!type.includes("json")) return null;
  try {
    return await response.clone().json();
  } catch {
    return null;
  }
}

/** Whether a refused logout says the session had ended already (revoked, or unknown). */
async function alreadyOver(response) {
  const code = (await problemOf(response))?.code;
  return (response.status === 401 && code === "token_revoked") || (response.status === 400 && code === "invalid_grant");
}

async function failure(response, what) {
  const problem = await problemOf(response);
  const code = problem?.code ?? problem?.error ?? "";
  const detail = problem?.detail ?? problem?.title ?? response.statusText;
  return new ClaimdError(`${what}: ${response.status} ${code} ${detail}`.trim(), {
    status: response.status,
    code,
    problem,
  });
}

/**
 * A session with claimd. The access token lives only in this object; the refresh token
 * too (body mode), or in claimd's HttpOnly cookie (cookie mode: the login answer carried
 * no refresh_token).
 */
export class ClaimdClient {
  #base;
  #fetch;
  #access = null;
  #claims = null;
  #refreshToken = null;
  #cookieMode = false;
  #inFlight = null;
  /** When the current access token arrived (Date.now()), to tell older shared tokens from newer. */
  #obtainedAt = 0;
  /** How the current access token arrived (login, refresh, shared, ...). */
  #accessReason = null;
  #listeners = new Set();
  #channel = null;
  #sharedWaiters = new Map();
  #lockName;
  #crossTabWaitMs;

  /**
   * @param {{ baseUrl?: string, fetch?: typeof fetch, crossTab?: boolean, crossTabWaitMs?: number }} options
   *   baseUrl: where claimd answers (relative URLs are resolved against the page);
   *   fetch: the fetch to send with (default: the global one);
   *   crossTab: share refreshes with other tabs of this origin in cookie mode (default true);
   *   crossTabWaitMs: how long to wait for another tab's announced token before refreshing
   *   with the cookie itself (default 2000; a late token only costs one more refresh).
   */
  constructor({ baseUrl = "", fetch: fetchImpl, crossTab = true, crossTabWaitMs = SHARED_TOKEN_WAIT_MS } = {}) {
    this.#base = absoluteBase(baseUrl);
    this.#crossTabWaitMs = crossTabWaitMs;
    const chosen = fetchImpl ?? globalThis.fetch;
    if (typeof chosen !== "function") {
      throw new TypeError("ClaimdClient: no fetch; pass one as { fetch } (Node 20+ has it)");
    }
    this.#fetch = (...args) => chosen(...args);
    this.#lockName = `claimd-refresh ${this.#base}`;
    // A token another tab shares from now on reaches this one by message; one shared
    // before cannot, so only later ones are worth waiting for.
    this.#obtainedAt = Date.now();
    // Tabs exist only where there is a page; Node's BroadcastChannel would also keep the
    // process alive.
    if (crossTab && globalThis.location && typeof globalThis.BroadcastChannel === "function") {
      this.#channel = new BroadcastChannel(`claimd ${this.#base}`);
      this.#channel.onmessage = (event) => this.#onShared(event.data);
    }
  }

  /** The decoded claims of the current access token, or null when logged out. */
  get claims() {
    return this.#claims;
  }

  /** The current access token (kept in memory only), or null. */
  get accessToken() {
    return this.#access;
  }

  /** Whether the refresh token travels in claimd's cookie rather than through this object. */
  get cookieMode() {
    return this.#cookieMode;
  }

  /**
   * Calls `callback({ reason, claims, previous })` whenever the tokens or claims change:
   * reason is "login", "refresh", "refreshed-token", "update", "shared", "logout" or
   * "revoked" (then claims is null). Returns a function that unsubscribes.
   */
  onChange(callback) {
    this.#listeners.add(callback);
    return () => this.#listeners.delete(callback);
  }

  /** The absolute URL of a claimd path such as "/me". */
  url(path) {
    return this.#base + (String(path).startsWith("/") ? path : `/${path}`);
  }

  /** Creates an account; resolves to the new user. Does not log in. */
  async register(username, password, extra = {}) {
    const response = await this.#post("/auth/register", { ...extra, username, password });
    if (!response.ok) throw await failure(response, "register");
    return (await response.json()).user;
  }

  /** Logs in; resolves to the claims of the new access token. */
  async login(username, password) {
    const response = await this.#post("/auth/login", { username, password }, true);
    if (!response.ok) throw await failure(response, "login");
    this.useTokens(await response.json(), "login");
    return this.#claims;
  }

  /**
   * Asks claimd to mail a password-reset link to `email`. Resolves the same whether or
   * not an account has the address (claimd answers 202 either way).
   */
  async requestPasswordReset(email) {
    const response = await this.#post("/auth/password/forgot", { email });
    if (!response.ok) throw await failure(response, "requestPasswordReset");
  }

  /**
   * Sets a new password with the `token` from a reset link (the `#token=` of
   * `/account/reset-password`). Every other session ends; this client is signed in with
   * the new one and resolves to its claims.
   */
  async resetPassword(token, newPassword) {
    const response = await this.#post(
      "/auth/password/reset",
      { token, new_password: newPassword },
      true,
    );
    if (!response.ok) throw await failure(response, "resetPassword");
    this.useTokens(await response.json(), "login");
    return this.#claims;
  }

  /**
   * Asks claimd to mail a verification link to the signed-in user's address (a session is
   * needed: this goes through `fetch`, refreshing a stale token as any call does).
   */
  async requestEmailVerification() {
    const response = await this.fetch("/auth/email/verification", { method: "POST" });
    if (!response.ok) throw await failure(response, "requestEmailVerification");
  }

  /**
   * Redeems the `token` of a verification link; resolves to the user. When this client
   * holds a session of that user, it refreshes to get a token carrying `email_verified`.
   */
  async verifyEmail(token) {
    const response = await this.#post("/auth/email/verify", { token });
    if (!response.ok) throw await failure(response, "verifyEmail");
    const { user } = await response.json();
    if (this.#access && this.#claims?.sub === user.id) await this.refresh();
    return user;
  }

  /** Asks claimd to mail a sign-in link to `email`; resolves the same for unknown ones. */
  async requestMagicLink(email) {
    const response = await this.#post("/auth/magic-link", { email });
    if (!response.ok) throw await failure(response, "requestMagicLink");
  }

  /** Signs in with the `token` of a magic link; resolves to the new token's claims. */
  async redeemMagicLink(token) {
    const response = await this.#post("/auth/magic-link/redeem", { token }, true);
    if (!response.ok) throw await failure(response, "redeemMagicLink");
    this.useTokens(await response.json(), "login");
    return this.#claims;
  }

  /**
   * Adopts a token response (access_token and, in body mode, refresh_token) obtained some
   * other way, e.g. from your own backend.
   */
  useTokens(tokens, reason = "tokens") {
    if (!tokens?.access_token) throw new TypeError("useTokens: no access_token");
    this.#refreshToken = tokens.refresh_token ?? null;
    this.#cookieMode = !tokens.refresh_token && reason === "login";
    this.#setAccess(tokens.access_token, reason);
  }

  /**
   * Gets a new access token with the current claims. Concurrent calls share one request;
   * in cookie mode, tabs of this origin share one too (Web Locks + BroadcastChannel).
   * With no session in memory it tries the refresh cookie, so a reloaded page can resume.
   * `invalid_grant` and `token_revoked` end the session (onChange "revoked") and reject.
   */
  refresh() {
    return this.#refreshReplacing(this.#access);
  }

  /** Ends this session on the server and here. */
  async logout() {
    await this.#end("/auth/logout");
  }

  /** Ends every session of this user, on every device. */
  async logoutAll() {
    await this.#end("/auth/logout-all");
  }

  /**
   * `PATCH /me` with `fields` (e.g. `{ plan: "pro" }`): claimd answers with a new access
   * token (refresh-on-change), which this client adopts. Resolves to the updated user.
   */
  async updateMe(fields) {
    const init = {
      method: "PATCH",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(fields),
    };
    const response = await this.#fetchAdopting("/me", init, "update");
    if (!response.ok) throw await failure(response, "update");
    const answer = await response.json();
    if (answer.token?.access_token && answer.token.access_token !== this.#access) {
      this.#setAccess(answer.token.access_token, "update");
    }
    return answer.user;
  }

  /**
   * fetch with the session: adds `Authorization: Bearer`, adopts any X-Refreshed-Token,
   * on `token_stale`/`token_expired` refreshes once and retries, and on `token_revoked`
   * ends the session. A relative `input` is a claimd path. A retried request is sent
   * again with the same `init`, so its body must be re-sendable (not a stream).
   */
  fetch(input, init = {}) {
    return this.#fetchAdopting(input, init, "refreshed-token");
  }

  // ---- internals ----

  /** `fetch`, naming a token that arrives in X-Refreshed-Token after `reason`. */
  async #fetchAdopting(input, init, reason) {
    if (this.#inFlight) await this.#inFlight.catch(() => {});
    const sent = this.#access;
    let response = await this.#send(input, init, sent, reason);
    const code = await this.#unauthorizedCode(response);
    if (code === "token_stale" || code === "token_expired") {
      try {
        await this.#refreshReplacing(sent);
      } catch (err) {
        if (err instanceof ClaimdError && err.status) return response;
        throw err;
      }
      let retried = this.#access;
      response = await this.#send(input, init, retried, reason);
      let again = await this.#unauthorizedCode(response);
      // A token another tab shared may itself predate the change that made ours stale
      // (its message was late): then this tab refreshes once on its own.
      if (again === "token_stale" && this.#accessReason === "shared" && this.#access === retried) {
        try {
          await this.#refreshReplacing(retried);
        } catch (err) {
          if (err instanceof ClaimdError && err.status) return response;
          throw err;
        }
        retried = this.#access;
        response = await this.#send(input, init, retried, reason);
        again = await this.#unauthorizedCode(response);
      }
      if (again === "token_revoked") this.#clear("revoked");
    } else if (code === "token_revoked") {
      this.#clear("revoked");
    }
    return response;
  }

  async #send(input, init, token, reason) {
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    if (token) headers.set("Authorization", `Bearer ${token}`);
    const target =
      input instanceof Request ? input.clone() : /^[a-z][a-z0-9+.-]*:/i.test(String(input)) ? input : this.url(input);
    const response = await this.#fetch(target, { ...init, headers });
    const refreshed = response.headers.get(REFRESHED_HEADER);
    if (refreshed && refreshed !== this.#access && this.#access === token) {
      this.#setAccess(refreshed, reason);
    }
    return response;
  }

  async #unauthorizedCode(response) {
    if (response.status !== 401) return null;
    return (await problemOf(response))?.code ?? null;
  }

  #post(path, body, withCookies = false) {
    const headers = { "Content-Type": "application/json" };
    const init = { method: "POST", headers, body: JSON.stringify(body) };
    if (withCookies) {
      headers["X-Requested-With"] = REQUESTED_WITH;
      init.credentials = "include";
    }
    return this.#fetch(this.url(path), init);
  }

  /** Refreshes unless the token `stale` has been replaced already; one request at a time. */
  #refreshReplacing(stale) {
    if (this.#inFlight) return this.#inFlight;
    if (this.#access !== stale && this.#access) return Promise.resolve(this.#claims);
    const run = async () => {
      try {
        if (this.#useLocks()) {
          await navigator.locks.request(this.#lockName, () => this.#refreshHoldingLock(stale));
        } else {
          await this.#refreshNow();
        }
        return this.#claims;
      } finally {
        this.#inFlight = null;
      }
    };
    this.#inFlight = run();
    return this.#inFlight;
  }

  /** Only the cookie is shared between tabs: a session of this client's own never is. */
  #useLocks() {
    return (
      this.#channel !== null &&
      !this.#refreshToken &&
      (this.#cookieMode || !this.#access) &&
      typeof globalThis.navigator?.locks?.request === "function"
    );
  }

  /**
   * In cookie mode every tab spends the same cookie: under the origin-wide lock, a tab
   * first checks whether another tab refreshed after this one got its token. The new
   * token travels by BroadcastChannel; localStorage notes only its jti and when it was
   * shared, so a tab whose message is still on its way knows to wait for it rather than
   * spend the cookie again.
   */
  async #refreshHoldingLock(stale) {
    if (this.#access !== stale && this.#access) return;
    const marked = this.#lastSharedMark();
    const mine = this.#claims?.jti;
    if (marked && marked.jti !== mine && marked.at >= this.#obtainedAt) {
      if (await this.#awaitShared(marked.jti)) return;
    }
    const before = this.#access;
    await this.#refreshNow();
    if (this.#cookieMode && this.#access && this.#access !== before) this.#share();
  }

  async #refreshNow() {
    const headers = {};
    const init = { method: "POST", headers };
    if (this.#refreshToken) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify({ refresh_token: this.#refreshToken });
    } else if (this.#cookieMode || !this.#access) {
      headers["X-Requested-With"] = REQUESTED_WITH;
      init.credentials = "include";
    } else {
      headers.Authorization = `Bearer ${this.#access}`;
    }
    const response = await this.#fetch(this.url(REFRESH_PATH), init);
    if (!response.ok) {
      const err = await failure(response, "refresh");
      if (err.code === "invalid_grant" || err.code === "token_revoked") this.#clear("revoked");
      throw err;
    }
    const tokens = await response.json();
    if (tokens.refresh_token) this.#refreshToken = tokens.refresh_token;
    else if (!this.#refreshToken && init.credentials === "include") this.#cookieMode = true;
    this.#setAccess(tokens.access_token, "refresh");
  }

  #storageKey() {
    return `claimd-refreshed ${this.#base}`;
  }

  #lastSharedMark() {
    try {
      const text = globalThis.localStorage?.getItem(this.#storageKey());
      return text ? JSON.parse(text) : null;
    } catch {
      return null;
    }
  }

  #share() {
    const jti = this.#claims?.jti ?? "";
    try {
      globalThis.localStorage?.setItem(this.#storageKey(), JSON.stringify({ jti, at: Date.now() }));
    } catch {
      // No storage (private mode, a worker): other tabs then wait for nothing and refresh.
    }
    this.#channel?.postMessage({ kind: "token", accessToken: this.#access, jti, at: this.#obtainedAt });
  }

  #awaitShared(jti) {
    if (decodeClaims(this.#access)?.jti === jti) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#sharedWaiters.delete(jti);
        resolve(false);
      }, this.#crossTabWaitMs);
      this.#sharedWaiters.set(jti, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  #onShared(message) {
    if (this.#refreshToken || (!this.#cookieMode && this.#access)) return;
    if (message?.kind === "token" && typeof message.accessToken === "string") {
      const claims = decodeClaims(message.accessToken);
      const mine = this.#claims;
      if (mine && claims?.sid !== mine.sid) return;
      // A late message can carry a token older than this tab's own: `iat` is in whole
      // seconds, so the time the sharing tab obtained it decides.
      if (mine && (claims?.iat < mine.iat || message.at < this.#obtainedAt)) return;
      this.#cookieMode = true;
      if (message.accessToken !== this.#access) {
        this.#setAccess(message.accessToken, "shared");
        if (typeof message.at === "number") this.#obtainedAt = message.at;
      }
      const waiter = this.#sharedWaiters.get(message.jti);
      if (waiter) {
        this.#sharedWaiters.delete(message.jti);
        waiter();
      }
    } else if (message?.kind === "ended" && this.#cookieMode && this.#access) {
      this.#clear("logout");
    }
  }

  /**
   * Ends the session on claimd, then here. claimd is shown every proof this object has:
   * the access token (even an expired one ends its session), the refresh token (body
   * mode) or the cookie (cookie mode). Rejects, keeping the session here, when claimd
   * did not end it (network fault, 5xx, CSRF refusal), so a page never looks logged out
   * while its session lives on; a session claimd says is already over counts as ended.
   */
  async #end(path) {
    const token = this.#access;
    const refresh = this.#refreshToken;
    if (token || refresh || this.#cookieMode) {
      const headers = { "X-Requested-With": REQUESTED_WITH };
      const init = { method: "POST", headers, credentials: "include" };
      if (token) headers.Authorization = `Bearer ${token}`;
      if (refresh) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify({ refresh_token: refresh });
      }
      const response = await this.#fetch(this.url(path), init);
      if (!response.ok && !(await alreadyOver(response))) throw await failure(response, "logout");
    }
    const wasCookie = this.#cookieMode;
    this.#clear("logout");
    if (wasCookie) this.#channel?.postMessage({ kind: "ended" });
  }

  #setAccess(token, reason) {
    const previous = this.#claims;
    this.#access = token;
    this.#claims = decodeClaims(token);
    this.#accessReason = reason;
    this.#obtainedAt = Date.now();
    this.#emit(reason, previous);
  }

  #clear(reason) {
    const previous = this.#claims;
    const had = this.#access !== null;
    this.#access = null;
    this.#claims = null;
    this.#refreshToken = null;
    this.#obtainedAt = Date.now();
    if (had) this.#emit(reason, previous);
  }

  #emit(reason, previous) {
    const event = { reason, claims: this.#claims, previous };
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }

  /** Stops listening to other tabs (the session itself is left as it is). */
  close() {
    this.#channel?.close();
    this.#channel = null;
  }
}
