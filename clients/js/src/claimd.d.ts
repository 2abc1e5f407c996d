// Type declarations for claimd.js.

/** The claims claimd puts in an access token (API.md). */
export interface ClaimdClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  sid: string;
  /** Tenant id; absent without a tenant. */
  tid?: string;
  roles: string[];
  plan: string;
  attrs?: Record<string, unknown>;
  uv: number;
  tv: number;
  /** The user's address and whether it is verified; both absent without one. */
  email?: string;
  email_verified?: boolean;
  [claim: string]: unknown;
}

/** A token response (RFC 6749 §5.1 shape). In cookie mode it has no refresh_token. */
export interface TokenResponse {
  access_token: string;
  token_type: "Bearer";
  expires_in: number;
  refresh_token?: string;
  refresh_expires_in?: number;
  session_id?: string;
}

/** A user record as claimd shows it (never the password hash). */
export interface ClaimdUser {
  id: string;
  username: string;
  tenant?: string;
  roles: string[];
  plan: string;
  attrs: Record<string, unknown>;
  claims_version: number;
  disabled: boolean;
  created_at: number;
  updated_at: number;
  /** The address mail goes to; null without one. */
  email: string | null;
  email_verified: boolean;
}

export type ChangeReason =
  | "login"
  | "tokens"
  | "refresh"
  | "refreshed-token"
  | "update"
  | "shared"
  | "logout"
  | "revoked";

export interface ChangeEvent {
  reason: ChangeReason;
  /** The claims now, or null once the session ended. */
  claims: ClaimdClaims | null;
  /** The claims before this change, or null. */
  previous: ClaimdClaims | null;
}

export interface ClaimdClientOptions {
  /** Where claimd answers. Relative URLs resolve against the page (browsers only). Default: "" (this origin). */
  baseUrl?: string;
  /** The fetch to send with; default the global one. */
  fetch?: typeof fetch;
  /** In cookie mode, share refreshes with other tabs of this origin (Web Locks + BroadcastChannel). Default true. */
  crossTab?: boolean;
  /** How long a tab waits for another tab's announced token before refreshing itself. Default 2000 ms. */
  crossTabWaitMs?: number;
}

/** A problem answer from claimd (RFC 9457). */
export class ClaimdError extends Error {
  readonly status: number;
  readonly code: string;
  readonly problem: Record<string, unknown> | null;
}

/** The claims of a JWT, decoded without verification; null if it is not one. */
export function decodeClaims(token: string | null | undefined): ClaimdClaims | null;

export class ClaimdClient {
  constructor(options?: ClaimdClientOptions);
  /** The decoded claims of the current access token, or null when logged out. */
  readonly claims: ClaimdClaims | null;
  /** The current access token (in memory only), or null. */
  readonly accessToken: string | null;
  /** Whether the refresh token travels in claimd's HttpOnly cookie. */
  readonly cookieMode: boolean;
  /** Calls back when tokens or claims change; returns an unsubscribe function. */
  onChange(callback: (event: ChangeEvent) => void): () => void;
  /** The absolute URL of a claimd path. */
  url(path: string): string;
  register(username: string, password: string, extra?: Record<string, unknown>): Promise<ClaimdUser>;
  login(username: string, password: string): Promise<ClaimdClaims>;
  /** Mails a reset link when an account has `email`; resolves the same when none has. */
  requestPasswordReset(email: string): Promise<void>;
  /** New password from a reset link's token; signs in with the new session. */
  resetPassword(token: string, newPassword: string): Promise<ClaimdClaims>;
  /** Mails a verification link to the signed-in user's address. */
  requestEmailVerification(): Promise<void>;
  /** Redeems a verification link's token; refreshes when this client holds that user's session. */
  verifyEmail(token: string): Promise<ClaimdUser>;
  /** Mails a sign-in link when an account has `email`; resolves the same when none has. */
  requestMagicLink(email: string): Promise<void>;
  /** Signs in with a magic link's token. */
  redeemMagicLink(token: string): Promise<ClaimdClaims>;
  /** Adopts a token response obtained some other way. */
  useTokens(tokens: TokenResponse, reason?: ChangeReason): void;
  /** A new access token with current claims (single flight; shared across tabs in cookie mode). */
  refresh(): Promise<ClaimdClaims | null>;
  /**
   * Ends this session on claimd, then here. Rejects with a ClaimdError, keeping the
   * session here, when claimd did not end it.
   */
  logout(): Promise<void>;
  /** Ends every session of the user, on claimd, then here; rejects like logout(). */
  logoutAll(): Promise<void>;
  /** PATCH /me; adopts the new token claimd answers with. */
  updateMe(fields: Record<string, unknown>): Promise<ClaimdUser>;
  /** fetch with the session: Bearer, X-Refreshed-Token, refresh-and-retry once on token_stale/token_expired. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** Stops listening to other tabs. */
  close(): void;
}
