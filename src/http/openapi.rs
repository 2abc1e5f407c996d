//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API, written by hand in
//! `openapi.json` beside this file, embedded minified and deflated (`src/build/embedded.rs`)
//! and inflated at the first request for it.
//!
//! Hand-written rather than generated: a generator (utoipa) would put an annotation on every
//! handler and a derive on every body type, for a document whose hard parts (which problem
//! codes an operation answers, the cookie and form variants of the token endpoint, the
//! forward-auth headers) are prose that no annotation derives. What keeps it true instead:
//! the unit tests below (a 3.1 document, every operation answers something, every `$ref`
//! resolves, every path parameter declared, every problem `code` in `error.rs` documented
//! under its status), `tests/api/http/openapi.rs` (its paths and methods
//! are exactly the route table's, probed with `OPTIONS` on a live server, and every
//! `resource("…")` in `src/http` is in it), and Schemathesis against a live server in CI.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::resource;

/// `openapi.json`, minified and deflated by the build script.
const DEFLATED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/openapi.json.deflate"));

/// The document, as served.
pub fn document() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| crate::embedded::inflate(DEFLATED, "the OpenAPI document"))
}

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/openapi.json").route(web::get().to(openapi)));
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(document())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    fn document() -> Value {
        serde_json::from_str(super::document()).expect("openapi.json is JSON")
    }

    /// Every operation as (path, method, operation object).
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths is an object");
        let mut found = Vec::new();
        for (path, item) in paths {
            for method in METHODS {
                if let Some(operation) = item.get(method) {
                    found.push((path.clone(), method.to_string(), operation.clone()));
                }
            }
        }
        found
    }

    /// Resolves a local reference (`#/a/b`, RFC 6901 escapes included).
    fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        doc.pointer(pointer)
    }

    fn collect_refs(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "$ref" {
                        if let Value::String(reference) = child {
                            into.push(reference.clone());
                        }
                    }
                    collect_refs(child, into);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect_refs(item, into)),
            _ => {}
        }
    }

    /// A parameter object, through its `$ref` when it has one.
    fn parameter<'a>(doc: &'a Value, param: &'a Value) -> &'a Value {
        match param.get("$ref").and_then(Value::as_str) {
            Some(reference) => resolve(doc, reference).expect("parameter $ref resolves"),
            None => param,
        }
    }

    #[test]
    fn is_an_openapi_3_1_document_of_this_version() {
        let doc = document();
        let version = doc["openapi"].as_str().expect("openapi is a string");
        assert!(version.starts_with("3.1."), "openapi {version}");
        assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(doc["info"]["title"].is_string());
    }

    #[test]
    fn every_operation_has_an_id_a_success_and_answers_only_with_known_codes() {
        let doc = document();
        let ops = operations(&doc);
        assert!(ops.len() > 30, "only {} operations", ops.len());
        let mut ids = std::collections::BTreeSet::new();
        for (path, method, op) in &ops {
            let id = op["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path}: no operationId");
            assert!(
                ids.insert(id.to_string()),
                "{method} {path}: duplicate {id}"
            );
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path}: no success response"
            );
            for status in responses.keys() {
                let code: u16 = status
                    .parse()
                    .unwrap_or_else(|_| panic!("{method} {path}: status {status}"));
                assert!((200..600).contains(&code), "{method} {path}: {code}");
            }
        }
    }

    #[test]
    fn every_error_answer_is_a_problem() {
        let doc = document();
        for (path, method, op) in operations(&doc) {
            for (status, response) in op["responses"].as_object().into_iter().flatten() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let response = match response.get("$ref").and_then(Value::as_str) {
                    Some(reference) => resolve(&doc, reference).expect("response resolves"),
                    None => response,
                };
                // The OAuth endpoints answer errors as `application/json` (RFC 6749 §5.2).
                let oauth = ["/auth/refresh-token", "/oauth/introspect", "/oauth/revoke"];
                let media = if oauth.contains(&path.as_str()) {
                    "application/json"
                } else {
                    "application/problem+json"
                };
                let schema = &response["content"][media]["schema"];
                assert_eq!(
                    schema["$ref"], "#/components/schemas/Problem",
                    "{method} {path} {status}: not a problem as {media}"
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 50, "only {} references", refs.len());
        for reference in refs {
            assert!(
                resolve(&doc, &reference).is_some(),
                "{reference} does not resolve"
            );
        }
    }

    #[test]
    fn every_path_parameter_is_declared_and_every_declared_one_is_in_the_path() {
        let doc = document();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let in_template: std::collections::BTreeSet<&str> = path
                .split('/')
                .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: std::collections::BTreeSet<&str> = item["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|param| parameter(&doc, param))
                .filter(|param| param["in"] == "path")
                .filter_map(|param| param["name"].as_str())
                .collect();
            assert_eq!(in_template, declared, "{path}");
        }
    }

    /// `(status, code)` of every `ApiError::new(StatusCode::X, "code", …)` in error.rs.
    fn error_codes() -> Vec<(u16, String)> {
        let source = include_str!("error.rs");
        let status_of = |name: &str| match name {
            "BAD_REQUEST" => 400,
            "UNAUTHORIZED" => 401,
            "FORBIDDEN" => 403,
            "NOT_FOUND" => 404,
            "METHOD_NOT_ALLOWED" => 405,
            "REQUEST_TIMEOUT" => 408,
            "CONFLICT" => 409,
            "PAYLOAD_TOO_LARGE" => 413,
            "UNSUPPORTED_MEDIA_TYPE" => 415,
            "TOO_MANY_REQUESTS" => 429,
            "INTERNAL_SERVER_ERROR" => 500,
            "GONE" => 410,
            "NOT_IMPLEMENTED" => 501,
            "SERVICE_UNAVAILABLE" => 503,
            other => panic!("add StatusCode::{other} to this table"),
        };
        source
            .split("ApiError::new(")
            .skip(1)
            .map(|call| {
                let (status, rest) = call.split_once(',').expect("a status argument");
                let name = status.rsplit("::").next().unwrap_or_default().trim();
                let code = rest.split('"').nth(1).expect("a code literal");
                (status_of(name), code.to_string())
            })
            .collect()
    }

    #[test]
    fn every_error_code_is_documented_under_its_status() {
        let doc = document();
        let codes = error_codes();
        assert!(codes.len() > 20, "error.rs scan found only {codes:?}");
        // Answers given outside any operation (a method a path does not take) are documented
        // as components only.
        let components: Vec<&Value> = doc["components"]["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, response)| response)
            .collect();
        for (status, code) in codes {
            if status == 500 {
                // An internal error is a bug, never part of the contract: Schemathesis
                // fails the run on any 5xx but 503.
                continue;
            }
            let mention = format!("`{code}`");
            let in_operations = operations(&doc).into_iter().any(|(_, _, op)| {
                op["responses"]
                    .get(status.to_string())
                    .map(
                        |response| match response.get("$ref").and_then(Value::as_str) {
                            Some(reference) => resolve(&doc, reference).expect("resolves"),
                            None => response,
                        },
                    )
                    .is_some_and(|response| {
                        response["description"]
                            .as_str()
                            .is_some_and(|text| text.contains(&mention))
                    })
            });
            let in_components = components.iter().any(|response| {
                response["description"]
                    .as_str()
                    .is_some_and(|text| text.contains(&mention))
            });
            assert!(
                in_operations || (status == 405 && in_components),
                "{status} {code}: no response documents it"
            );
        }
    }

    #[test]
    fn every_security_requirement_names_a_scheme() {
        let doc = document();
        let schemes = doc["components"]["securitySchemes"]
            .as_object()
            .expect("security schemes");
        for (path, method, op) in operations(&doc) {
            for requirement in op["security"].as_array().into_iter().flatten() {
                for name in requirement
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k)
                {
                    assert!(schemes.contains_key(name), "{method} {path}: {name}");
                }
            }
        }
    }
}
