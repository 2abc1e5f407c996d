//! `POST /admin/backup`: a consistent backup of the store, streamed to an admin. The
//! server holds its data directory exclusively, so a backup of a running server can only
//! come from the server itself; `claimd backup FILE` does the same with the server stopped.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use futures_util::stream;
use tokio::io::AsyncReadExt as _;

use super::error::ApiError;
use super::extract::Admin;
use super::{resource, AppState};

/// How much of the backup file is read per chunk sent.
const CHUNK: usize = 64 * 1024;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/admin/backup").route(web::post().to(backup)));
}

async fn backup(state: web::Data<AppState>, admin: Admin) -> Result<HttpResponse, ApiError> {
    state.auth.admin.require_backup_operator(admin.caller())?;
    let (file, summary) = state.auth.admin.export_backup().await?;
    let file = tokio::fs::File::from_std(file);
    let body = stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut chunk = vec![0u8; CHUNK];
        match file.read(&mut chunk).await {
            Ok(0) => None,
            Ok(read) => {
                chunk.truncate(read);
                Some((Ok(web::Bytes::from(chunk)), Some(file)))
            }
            Err(err) => Some((Err(err), None)),
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header((
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"claimd.backup\"",
        ))
        .insert_header(("x-backup-records", summary.records.to_string()))
        .no_chunking(summary.bytes)
        .streaming(body))
}
