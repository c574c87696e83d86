//! `/healthz` (the process answers) and `/readyz` (its dependencies answer).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::http::state::AppState;

pub async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

/// 200 `ready` when the database and (if configured) Redis answer; 200
/// `degraded` when only Redis is down (this node still serves its own clients,
/// so taking it out of the load balancer would only make things worse); 503
/// when the database is down or the node is shutting down.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let database = match state.store.ping().await {
        Ok(()) => "ok",
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database unreachable");
            "unreachable"
        }
    };
    let redis = match state.bus.redis() {
        None => "not_configured",
        Some(link) if link.is_connected() && link.ping().await => "ok",
        Some(_) => "unreachable",
    };
    let shutting_down = state.shutdown.is_cancelled();
    let (status, code) = match (database, redis) {
        _ if shutting_down => ("shutting_down", StatusCode::SERVICE_UNAVAILABLE),
        ("ok", "ok" | "not_configured") => ("ready", StatusCode::OK),
        ("ok", _) => ("degraded", StatusCode::OK),
        _ => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
    };
    let body = json!({
        "status": status,
        "checks": { "database": database, "redis": redis },
        "node": state.bus.redis().map(|r| r.node().to_string()),
        "connections": state.bus.hub().connection_count(),
    });
    (code, Json(body)).into_response()
}
