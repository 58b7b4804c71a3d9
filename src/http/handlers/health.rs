//! `GET /healthz` (the process is up) and `GET /readyz` (the store answers).

use http::StatusCode;
use serde_json::json;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::response::{HttpResponse, json};

pub(crate) fn healthz() -> HttpResponse {
    json(StatusCode::OK, &json!({ "status": "ok" }))
}

pub(crate) async fn readyz(app: &App) -> HttpResponse {
    match app.auth.store().ping().await {
        Ok(()) => json(StatusCode::OK, &json!({ "status": "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::StoreUnavailable.into_response()
        }
    }
}
