//! The only place that decides status codes. Every error leaves as an RFC 9457 problem
//! (`application/problem+json`) with a stable `code`; 401s carry `WWW-Authenticate`
//! (RFC 6750), 429s `Retry-After`. 5xx bodies are opaque: the cause goes to the log.
//!
//! The OAuth endpoints' errors (token, introspection, revocation) also carry RFC 6749
//! §5.2's `error` and `error_description` as extension members of the problem, and leave
//! as `application/json` as §5.2 says ([`ApiError::at_token_endpoint`]): OAuth client
//! libraries check the media type (openid-client refuses `application/problem+json`), so
//! an app can tell `invalid_grant` ("log in again") from a network fault.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;

/// How long a client should wait before retrying a write refused for a storage fault:
/// the recovery task looks at the disk every second, and a reopen takes well under one.
const STORAGE_RETRY_AFTER_SECS: u64 = 2;

/// The OAuth endpoints (token, introspection, revocation): their errors, body-level
/// refusals included, are answered as [`ApiError::at_token_endpoint`] says.
pub const OAUTH_ENDPOINT_PATHS: [&str; 3] =
    ["/auth/refresh-token", "/oauth/introspect", "/oauth/revoke"];

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after: Option<u64>,
    /// RFC 6749 §5.2 `error`, for answers of the OAuth endpoints.
    oauth_error: Option<&'static str>,
    /// Answered by an OAuth endpoint: `application/json` rather than the problem type.
    at_oauth_endpoint: bool,
    /// What a 401 asks the client to authenticate with, if anything.
    challenge: Option<Challenge>,
}

/// What an answer's `WWW-Authenticate` asks for, chosen by the error that refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Challenge {
    /// No token was presented (RFC 6750 §3): `Bearer`, with no error.
    Bearer,
    /// The token presented is not accepted (RFC 6750 §3.1): `error="invalid_token"` and
    /// why.
    InvalidBearer,
    /// Client authentication failed (RFC 6749 §2.3.1): `Basic`.
    Basic,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    code: &'a str,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'a str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
            oauth_error: None,
            at_oauth_endpoint: false,
            challenge: None,
        }
    }

    /// The same error, asking for `challenge` in `WWW-Authenticate`.
    fn challenging(self, challenge: Challenge) -> ApiError {
        ApiError {
            challenge: Some(challenge),
            ..self
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 408 `request_timeout`: the body did not arrive within `server.body_timeout`.
    pub fn request_timeout() -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/json",
        )
    }

    /// 415 `unsupported_media_type`, for the form-encoded OAuth endpoints.
    pub fn unsupported_media_type_form() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/x-www-form-urlencoded",
        )
    }

    /// 415 `unsupported_media_type`, for the token endpoint.
    pub fn unsupported_media_type_token() -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/x-www-form-urlencoded or application/json",
        )
    }

    /// 400 `unsupported_grant_type` (RFC 6749 §5.2).
    pub fn unsupported_grant_type(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "unsupported_grant_type", detail)
    }

    /// 400 `invalid_scope` (RFC 6749 §5.2): claimd grants no scopes.
    pub fn invalid_scope() -> ApiError {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "claimd grants no scopes: leave scope out",
        )
    }

    /// 403 `csrf_refused`: a request authenticated by the refresh cookie without the
    /// custom header, or from an origin that may not use it.
    pub fn csrf_refused(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "csrf_refused", detail)
    }

    /// The same error as the token endpoint answers it: with RFC 6749 §5.2's `error` (and
    /// `error_description`, the detail) when the error is one §5.2 names. Body-level
    /// refusals (malformed, too large, wrong media type or method, too slow) are
    /// `invalid_request`.
    /// The token errors of the Bearer re-mint path stay RFC 6750 ones.
    /// The answer is `application/json` (§5.2), the problem members kept.
    #[must_use]
    pub fn at_token_endpoint(mut self) -> ApiError {
        self.at_oauth_endpoint = true;
        self.oauth_error = match self.code {
            "invalid_request"
            | "payload_too_large"
            | "unsupported_media_type"
            | "method_not_allowed"
            | "request_timeout" => Some("invalid_request"),
            code @ ("invalid_grant"
            | "invalid_client"
            | "unauthorized_client"
            | "unsupported_grant_type"
            | "invalid_scope") => Some(code),
            _ => None,
        };
        self
    }

    /// 404 `not_found`.
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this resource",
        )
    }

    /// 503 `storage_unavailable`: the store cannot write now (disk full, I/O error,
    /// read-only) or is being reopened after it could not. The request's outcome is
    /// unknown; retrying it after `Retry-After` seconds is safe.
    fn storage_unavailable() -> ApiError {
        ApiError {
            retry_after: Some(STORAGE_RETRY_AFTER_SECS),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the store cannot write right now; retry the request later",
            )
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.detail)
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> ApiError {
        use StatusCode as S;
        match err {
            AuthError::InvalidRequest(detail) => ApiError::invalid_request(detail),
            AuthError::PasswordTooWeak(detail) => {
                ApiError::new(S::BAD_REQUEST, "password_too_weak", detail)
            }
            AuthError::UsernameTaken => {
                ApiError::new(S::CONFLICT, "username_taken", "that username is taken")
            }
            AuthError::EmailTaken => ApiError::new(
                S::CONFLICT,
                "email_taken",
                "that email address belongs to another account",
            ),
            AuthError::LinkInvalid => ApiError::new(
                S::BAD_REQUEST,
                "link_invalid",
                "the link is not valid: it was used, replaced by a newer one, or has expired; \
                 ask for a new one",
            ),
            AuthError::MailDisabled => ApiError::new(
                S::NOT_IMPLEMENTED,
                "mail_disabled",
                "this server sends no mail: set mail.transport to \"smtp\" or \"outbox\"",
            ),
            AuthError::EmailUnverified { .. } => ApiError::new(
                S::FORBIDDEN,
                "email_unverified",
                "this account's email address is not verified: a verification link was \
                 mailed to it (unless one was mailed very recently); follow it, then sign in",
            ),
            AuthError::InvalidCredentials => ApiError::new(
                S::UNAUTHORIZED,
                "invalid_credentials",
                "wrong username or password",
            ),
            AuthError::TooManyAttempts {
                retry_after_secs,
                limit,
            } => ApiError {
                retry_after: Some(retry_after_secs),
                ..ApiError::new(
                    S::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    limit.unwrap_or_else(|| "too many failed attempts; retry later".into()),
                )
            },
            AuthError::TokenMissing => ApiError::new(
                S::UNAUTHORIZED,
                "token_missing",
                "an access token is required",
            )
            .challenging(Challenge::Bearer),
            AuthError::TokenInvalid(reason) => {
                ApiError::new(S::UNAUTHORIZED, "token_invalid", reason)
                    .challenging(Challenge::InvalidBearer)
            }
            AuthError::TokenExpired => ApiError::new(
                S::UNAUTHORIZED,
                "token_expired",
                "the access token has expired",
            )
            .challenging(Challenge::InvalidBearer),
            AuthError::TokenStale => ApiError::new(
                S::UNAUTHORIZED,
                "token_stale",
                "claims have changed: get a new token from /auth/refresh-token",
            )
            .challenging(Challenge::InvalidBearer),
            AuthError::TokenRevoked => ApiError::new(
                S::UNAUTHORIZED,
                "token_revoked",
                "the token has been revoked",
            )
            .challenging(Challenge::InvalidBearer),
            AuthError::InvalidGrant(reason) => {
                ApiError::new(S::BAD_REQUEST, "invalid_grant", reason)
            }
            AuthError::Forbidden(reason) => ApiError::new(S::FORBIDDEN, "forbidden", reason),
            AuthError::NotFound => ApiError::not_found(),
            AuthError::InvalidClient => ApiError::new(
                S::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
            .challenging(Challenge::Basic),
            AuthError::TenantFull => ApiError::new(
                S::CONFLICT,
                "tenant_full",
                "the tenant has reached max_accounts",
            ),
            AuthError::TenantNotEmpty => ApiError::new(
                S::CONFLICT,
                "tenant_not_empty",
                "the tenant still has members",
            ),
            AuthError::InvitationInvalid => ApiError::new(
                S::FORBIDDEN,
                "invitation_invalid",
                "the invitation is not valid: unknown, used, revoked or expired",
            ),
            AuthError::TooManyInvitations => ApiError::new(
                S::CONFLICT,
                "too_many_invitations",
                "the tenant holds too many invitations; revoke some or wait for them to expire",
            ),
            AuthError::EventsGone { reason } => ApiError::new(
                S::GONE,
                "events_gone",
                format!("{reason}: take GET /events/snapshot and resume from its continues_from"),
            ),
            AuthError::Unavailable(reason) => {
                ApiError::new(S::SERVICE_UNAVAILABLE, "unavailable", reason)
            }
            AuthError::Store(crate::store::StoreError::Backup(err)) => {
                // The backup's own file failed (its disk full); the store goes on writing.
                tracing::warn!(error = %err, "backup failed");
                ApiError::storage_unavailable()
            }
            AuthError::Store(err) if err.is_storage_fault() => {
                // Logged once per episode by the store; the outcome is unknown, so the
                // client retries (a refresh retried gets the same successor).
                tracing::debug!(error = %err, "write refused: storage unavailable");
                ApiError::storage_unavailable()
            }
            AuthError::Store(err) => {
                tracing::error!(error = %err, "store failure");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
            }
            AuthError::Internal(err) => {
                tracing::error!(error = %err, "internal failure");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let problem = Problem {
            kind: "about:blank",
            title,
            status: self.status.as_u16(),
            code: self.code,
            detail: &self.detail,
            error: self.oauth_error,
            error_description: self.oauth_error.map(|_| self.detail.as_str()),
        };
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let mut response = HttpResponse::build(self.status);
        response.content_type(if self.at_oauth_endpoint {
            "application/json"
        } else {
            "application/problem+json"
        });
        let challenge = match self.challenge {
            None => None,
            Some(Challenge::Bearer) => Some("Bearer".to_string()),
            Some(Challenge::InvalidBearer) => Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{}\"",
                self.detail.replace(['"', '\\'], "'")
            )),
            Some(Challenge::Basic) => Some("Basic realm=\"claimd\"".to_string()),
        };
        if let Some(value) = challenge.and_then(|text| HeaderValue::from_str(&text).ok()) {
            response.insert_header((header::WWW_AUTHENTICATE, value));
        }
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.body(body)
    }
}
