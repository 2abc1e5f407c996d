//! The admin API: users, tenants and their invitations, service credentials and signing
//! keys. Every call is made with an admin's access token (`bearer`).

use reqwest::{Method, Response};
use serde_json::{json, Value};

use crate::helpers::{json_response, Service, TestApp};

/// A user id that no user has (well-formed, never issued).
pub const UNKNOWN_ID: &str = "01890000-0000-7000-8000-000000000000";

impl TestApp {
    // users

    /// `GET /admin/users` with `query` (e.g. `"?limit=3"`, or `""`).
    pub async fn admin_list_users(&self, bearer: &str, query: &str) -> Response {
        self.request(Method::GET, &format!("/admin/users{query}"), Some(bearer))
            .await
    }

    pub async fn admin_get_user(&self, bearer: &str, id: &str) -> Response {
        self.request(Method::GET, &format!("/admin/users/{id}"), Some(bearer))
            .await
    }

    pub async fn admin_patch_user(&self, bearer: &str, id: &str, body: &Value) -> Response {
        self.send_json(
            Method::PATCH,
            &format!("/admin/users/{id}"),
            Some(bearer),
            body,
        )
        .await
    }

    /// `PATCH /admin/users/{id}` asserting a 200; returns the `user` object.
    pub async fn admin_patch_user_ok(&self, bearer: &str, id: &str, body: &Value) -> Value {
        let resp = self.admin_patch_user(bearer, id, body).await;
        json_response(resp, 200).await["user"].clone()
    }

    pub async fn admin_delete_user(&self, bearer: &str, id: &str) -> Response {
        self.request(Method::DELETE, &format!("/admin/users/{id}"), Some(bearer))
            .await
    }

    pub async fn admin_revoke_user(&self, bearer: &str, id: &str) -> Response {
        self.request(
            Method::POST,
            &format!("/admin/users/{id}/revoke"),
            Some(bearer),
        )
        .await
    }

    // tenants

    pub async fn create_tenant(&self, bearer: &str, body: &Value) -> Response {
        self.send_json(Method::POST, "/admin/tenants", Some(bearer), body)
            .await
    }

    /// `POST /admin/tenants` asserting a 201; returns the `tenant` object.
    pub async fn create_tenant_ok(&self, bearer: &str, body: &Value) -> Value {
        let resp = self.create_tenant(bearer, body).await;
        json_response(resp, 201).await["tenant"].clone()
    }

    pub async fn list_tenants(&self, bearer: &str) -> Response {
        self.request(Method::GET, "/admin/tenants", Some(bearer))
            .await
    }

    pub async fn get_tenant(&self, bearer: &str, id: &str) -> Response {
        self.request(Method::GET, &format!("/admin/tenants/{id}"), Some(bearer))
            .await
    }

    /// `GET /admin/tenants/{id}` asserting a 200; returns the `tenant` object.
    pub async fn get_tenant_ok(&self, bearer: &str, id: &str) -> Value {
        json_response(self.get_tenant(bearer, id).await, 200).await["tenant"].clone()
    }

    pub async fn patch_tenant(&self, bearer: &str, id: &str, body: &Value) -> Response {
        self.send_json(
            Method::PATCH,
            &format!("/admin/tenants/{id}"),
            Some(bearer),
            body,
        )
        .await
    }

    pub async fn delete_tenant(&self, bearer: &str, id: &str) -> Response {
        self.request(
            Method::DELETE,
            &format!("/admin/tenants/{id}"),
            Some(bearer),
        )
        .await
    }

    // invitations

    /// `POST /admin/tenants/{tenant}/invitations`, with `body` or with none.
    pub async fn create_invitation(
        &self,
        bearer: &str,
        tenant: &str,
        body: Option<&Value>,
    ) -> Response {
        let path = format!("/admin/tenants/{tenant}/invitations");
        match body {
            Some(body) => {
                self.send_json(Method::POST, &path, Some(bearer), body)
                    .await
            }
            None => self.request(Method::POST, &path, Some(bearer)).await,
        }
    }

    /// `POST /admin/tenants/{tenant}/invitations` asserting a 201; returns the `invitation`
    /// object (with its `code`).
    pub async fn create_invitation_ok(
        &self,
        bearer: &str,
        tenant: &str,
        body: Option<&Value>,
    ) -> Value {
        let resp = self.create_invitation(bearer, tenant, body).await;
        json_response(resp, 201).await["invitation"].clone()
    }

    pub async fn list_invitations(&self, bearer: &str, tenant: &str) -> Response {
        self.request(
            Method::GET,
            &format!("/admin/tenants/{tenant}/invitations"),
            Some(bearer),
        )
        .await
    }

    pub async fn revoke_invitation(&self, bearer: &str, tenant: &str, id: &str) -> Response {
        self.request(
            Method::DELETE,
            &format!("/admin/tenants/{tenant}/invitations/{id}"),
            Some(bearer),
        )
        .await
    }

    // service credentials

    pub async fn create_service(&self, bearer: &str, name: &str) -> Response {
        self.send_json(
            Method::POST,
            "/admin/services",
            Some(bearer),
            &json!({"name": name}),
        )
        .await
    }

    /// `POST /admin/services` asserting a 201 of the documented shape.
    pub async fn create_service_ok(&self, bearer: &str, name: &str) -> Service {
        let body = json_response(self.create_service(bearer, name).await, 201).await;
        let field = |key: &str| {
            body[key]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| panic!("service {key:?} is a non-empty string: {body}"))
                .to_string()
        };
        let service = Service {
            client_id: field("client_id"),
            client_secret: field("client_secret"),
            name: field("name"),
        };
        assert_eq!(service.name, name, "the service keeps its name: {body}");
        service
    }

    pub async fn list_services(&self, bearer: &str) -> Response {
        self.request(Method::GET, "/admin/services", Some(bearer))
            .await
    }

    pub async fn delete_service(&self, bearer: &str, client_id: &str) -> Response {
        self.request(
            Method::DELETE,
            &format!("/admin/services/{client_id}"),
            Some(bearer),
        )
        .await
    }

    // signing keys

    /// `POST /admin/keys/rotate` with an optional JSON body.
    pub async fn rotate_keys(&self, bearer: &str, body: Option<&Value>) -> Response {
        match body {
            Some(body) => {
                self.send_json(Method::POST, "/admin/keys/rotate", Some(bearer), body)
                    .await
            }
            None => {
                self.request(Method::POST, "/admin/keys/rotate", Some(bearer))
                    .await
            }
        }
    }

    /// `POST /admin/keys/rotate {"now": now}` asserting a 200; returns the `key` object
    /// (`kid`, `alg`, `signs_from`).
    pub async fn rotate_keys_ok(&self, bearer: &str, now: bool) -> Value {
        let resp = self.rotate_keys(bearer, Some(&json!({"now": now}))).await;
        let body = json_response(resp, 200).await;
        let key = body["key"].clone();
        assert!(
            key["kid"].as_str().is_some_and(|k| !k.is_empty()),
            "key.kid is a non-empty string: {body}"
        );
        assert!(key["alg"].is_string(), "key.alg is a string: {body}");
        assert!(
            key["signs_from"].is_u64(),
            "key.signs_from is unix seconds: {body}"
        );
        key
    }
}
