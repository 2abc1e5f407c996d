//! Administration routes (role `admin`): `/admin/users`, `/admin/tenants` (with their
//! invitations), `/admin/services` and `/admin/keys/rotate`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::body::{json_body, parse_json, read_body, require_json_content_type};
use super::change_bodies;
use super::error::ApiError;
use super::extract::Admin;
use super::path_ids;
use super::{resource, with_refreshed_token, AppState};
use crate::domain::UserId;
use crate::secret::SecretString;

/// Default page size of `GET /admin/users`.
const DEFAULT_PAGE: usize = 50;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/users").route(web::get().to(list_users)))
        .service(
            resource("/admin/users/{id}")
                .route(web::get().to(get_user))
                .route(web::patch().to(patch_user))
                .route(web::delete().to(delete_user)),
        )
        .service(resource("/admin/users/{id}/revoke").route(web::post().to(revoke_user)))
        .service(
            resource("/admin/tenants")
                .route(web::get().to(list_tenants))
                .route(web::post().to(create_tenant)),
        )
        .service(resource("/admin/keys/rotate").route(web::post().to(rotate_key)))
        .service(
            resource("/admin/services")
                .route(web::get().to(list_services))
                .route(web::post().to(create_service)),
        )
        .service(resource("/admin/services/{client_id}").route(web::delete().to(delete_service)))
        .service(
            resource("/admin/tenants/{id}")
                .route(web::get().to(get_tenant))
                .route(web::patch().to(patch_tenant))
                .route(web::delete().to(delete_tenant)),
        )
        .service(
            resource("/admin/tenants/{id}/invitations")
                .route(web::get().to(list_invitations))
                .route(web::post().to(create_invitation)),
        )
        .service(
            resource("/admin/tenants/{id}/invitations/{invitation_id}")
                .route(web::delete().to(revoke_invitation)),
        );
}

fn limit(state: &AppState) -> usize {
    state.auth.settings().server.max_body_bytes
}

/// An admin's answer, with the caller's re-minted token when its own was stale under
/// `on_stale = "reissue"`.
fn answer(refreshed: Option<&SecretString>) -> actix_web::HttpResponseBuilder {
    with_refreshed_token(HttpResponse::Ok(), refreshed)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list_users(
    state: web::Data<AppState>,
    admin: Admin,
    page: Result<web::Query<Page>, actix_web::Error>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let page = page.map_err(|err| ApiError::invalid_request(format!("query: {err}")))?;
    let after = match page.after.as_deref() {
        Some(text) => Some(
            UserId::parse(text).ok_or_else(|| ApiError::invalid_request("after: not a user id"))?,
        ),
        None => None,
    };
    let (users, next) = state
        .auth
        .admin
        .list_users(after, page.limit.unwrap_or(DEFAULT_PAGE))
        .await?;
    Ok(answer(caller.refreshed.as_ref()).json(json!({ "users": users, "next": next })))
}

async fn get_user(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let (user, sessions) = state.auth.admin.get_user(path_ids::user(&id)?).await?;
    Ok(answer(caller.refreshed.as_ref()).json(json!({ "user": user, "sessions": sessions })))
}

async fn patch_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let id = path_ids::user(&id)?;
    let patch = change_bodies::user_patch(json_body(&req, payload, limit(&state)).await?);
    let (user, own_token) = state.auth.admin.patch_user(caller, id, patch).await?;
    let refreshed = own_token
        .as_ref()
        .map(|token| &token.access_token)
        .or(caller.refreshed.as_ref());
    let body = match &own_token {
        Some(token) => json!({ "user": user, "token": token }),
        None => json!({ "user": user }),
    };
    Ok(answer(refreshed).json(body))
}

async fn delete_user(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    state
        .auth
        .admin
        .delete_user(caller, path_ids::user(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn revoke_user(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin.revoke_user(path_ids::user(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn list_tenants(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let tenants = state.auth.admin.list_tenants().await?;
    Ok(answer(caller.refreshed.as_ref()).json(json!({ "tenants": tenants })))
}

async fn create_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let fields = change_bodies::tenant_change(json_body(&req, payload, limit(&state)).await?)?;
    let tenant = state.auth.admin.create_tenant(fields).await?;
    Ok(
        with_refreshed_token(HttpResponse::Created(), caller.refreshed.as_ref())
            .json(json!({ "tenant": tenant })),
    )
}

async fn get_tenant(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let tenant = state.auth.admin.get_tenant(path_ids::tenant(&id)?).await?;
    Ok(answer(caller.refreshed.as_ref()).json(json!({ "tenant": tenant })))
}

async fn patch_tenant(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let id = path_ids::tenant(&id)?;
    let fields = change_bodies::tenant_change(json_body(&req, payload, limit(&state)).await?)?;
    let tenant = state.auth.admin.patch_tenant(id, &fields).await?;
    Ok(answer(caller.refreshed.as_ref()).json(json!({ "tenant": tenant })))
}

async fn delete_tenant(
    state: web::Data<AppState>,
    _admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .admin
        .delete_tenant(path_ids::tenant(&id)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct InvitationBody {
    /// Seconds the invitation lives (RFC 6749's `expires_in` unit).
    #[serde(default)]
    expires_in: Option<u64>,
}

/// `POST /admin/tenants/{id}/invitations`: a single-use code into the tenant, shown this
/// once. The body is optional.
async fn create_invitation(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let tenant = path_ids::tenant(&id)?;
    let body = read_body(payload, limit(&state)).await?;
    let request: InvitationBody = if body.iter().all(u8::is_ascii_whitespace) {
        InvitationBody::default()
    } else {
        require_json_content_type(&req)?;
        parse_json(&body)?
    };
    let invitation = state
        .auth
        .admin
        .create_invitation(tenant, request.expires_in)
        .await?;
    tracing::trace!(?invitation, "invitation answered");
    Ok(
        with_refreshed_token(HttpResponse::Created(), caller.refreshed.as_ref())
            .json(json!({ "invitation": invitation })),
    )
}

async fn list_invitations(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let caller = admin.caller();
    let invitations = state
        .auth
        .admin
        .list_invitations(path_ids::tenant(&id)?)
        .await?;
    Ok(answer(caller.refreshed.as_ref()).json(json!({ "invitations": invitations })))
}

async fn revoke_invitation(
    state: web::Data<AppState>,
    _admin: Admin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (tenant, invitation) = path.into_inner();
    let (tenant, invitation) = (
        path_ids::tenant(&tenant)?,
        path_ids::invitation(&invitation)?,
    );
    state
        .auth
        .admin
        .revoke_invitation(tenant, invitation)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    #[serde(default)]
    now: bool,
}

/// `POST /admin/keys/rotate`: a new signing key, published `keys.publish_ahead` before it
/// signs (at once with `{"now": true}`). The body is optional.
async fn rotate_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, limit(&state)).await?;
    let request: RotateBody = if body.iter().all(u8::is_ascii_whitespace) {
        RotateBody::default()
    } else {
        require_json_content_type(&req)?;
        parse_json(&body)?
    };
    let added = state.auth.keys.rotate_signing_key(request.now).await?;
    Ok(answer(None).json(json!({ "key": added })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceBody {
    name: String,
}

async fn create_service(
    req: HttpRequest,
    state: web::Data<AppState>,
    _admin: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: ServiceBody = json_body(&req, payload, limit(&state)).await?;
    let created = state.auth.admin.create_service(&body.name).await?;
    tracing::trace!(answer = ?created, "service credential answered");
    Ok(HttpResponse::Created().json(created))
}

async fn list_services(
    state: web::Data<AppState>,
    _admin: Admin,
) -> Result<HttpResponse, ApiError> {
    Ok(answer(None).json(json!({ "services": state.auth.admin.list_services().await? })))
}

async fn delete_service(
    state: web::Data<AppState>,
    _admin: Admin,
    client_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state.auth.admin.delete_service(&client_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
