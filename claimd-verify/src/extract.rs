//! [`VerifiedToken`]: an actix-web extractor for `Authorization: Bearer`, verified by the
//! [`Verifier`] in the app data. A refusal is answered as claimd answers it: the same
//! problem+json body (`type`, `title`, `status`, `code`, `detail`), `Cache-Control:
//! no-store` and, for a 401, the same `WWW-Authenticate` challenge; past
//! `max_staleness`, 503 `verifier_unavailable`.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use crate::error::VerifyError;
use crate::verifier::Verifier;
use crate::VerifiedClaims;

/// The claims of a token the [`Verifier`] accepted. Register the verifier with
/// `App::app_data(web::Data::new(verifier))`.
#[derive(Debug, Clone)]
pub struct VerifiedToken(pub VerifiedClaims);

impl std::ops::Deref for VerifiedToken {
    type Target = VerifiedClaims;
    fn deref(&self) -> &VerifiedClaims {
        &self.0
    }
}

/// A refusal as an HTTP answer.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub VerifyError);

impl ResponseError for Rejection {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            VerifyError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = self.0.to_string();
        let body = json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "code": self.0.code(),
            "detail": detail,
        });
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        response.insert_header((header::CACHE_CONTROL, "no-store"));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match self.0 {
                VerifyError::Missing => "Bearer".to_string(),
                _ => format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    detail.replace(['"', '\\'], "'")
                ),
            };
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response.insert_header((header::WWW_AUTHENTICATE, value));
            }
        }
        response.body(body.to_string())
    }
}

/// The bearer token of the request, shape-checked as claimd checks it (the same code).
fn bearer(req: &HttpRequest) -> Result<String, VerifyError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or(VerifyError::Missing)?;
    let token = claimd_token::bearer_credential(value.as_bytes())?;
    Ok(token.to_string())
}

impl FromRequest for VerifiedToken {
    type Error = Rejection;
    type Future = Pin<Box<dyn Future<Output = Result<VerifiedToken, Rejection>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verifier = req
            .app_data::<web::Data<Verifier>>()
            .map(|data| Verifier::clone(data))
            .or_else(|| req.app_data::<Verifier>().cloned());
        let token = bearer(req);
        Box::pin(async move {
            let Some(verifier) = verifier else {
                tracing::error!("VerifiedToken used without a Verifier in the app data");
                return Err(Rejection(VerifyError::Unavailable(
                    "no verifier is configured".into(),
                )));
            };
            let token = token.map_err(Rejection)?;
            verifier
                .verify(&token)
                .await
                .map(VerifiedToken)
                .map_err(Rejection)
        })
    }
}
