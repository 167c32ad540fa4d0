//! `GET /internal/dashboard` and its assets: a page compiled into the binary. It carries no
//! data, so it loads without a token; its script asks for the operator token, keeps it in
//! `sessionStorage` and polls the operator routes with `Authorization: Bearer` (never in a
//! URL, so never in an access log). Without a token configured the operator routes are open
//! in development and absent in production; so is the page.

use actix_web::http::header::{self, ContentType};
use actix_web::{web, HttpResponse};

use crate::http::error::ApiError;
use crate::state::AppState;

const PAGE: &str = include_str!("../static/dashboard.html");

/// The files the page loads, by the name in its URL. A fixed list: the path segment is
/// compared, never joined to a directory.
const ASSETS: [(&str, &str, &[u8]); 5] = [
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/dashboard.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../static/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/vendor/uplot/uPlot.min.css"),
    ),
    (
        "uPlot-LICENSE.txt",
        "text/plain; charset=utf-8",
        include_bytes!("../static/vendor/uplot/LICENSE"),
    ),
];

/// The names [`dashboard_asset`] serves (the document's `{asset}` values).
pub const ASSET_NAMES: [&str; 5] = [
    ASSETS[0].0,
    ASSETS[1].0,
    ASSETS[2].0,
    ASSETS[3].0,
    ASSETS[4].0,
];

/// Only this origin's own files and JSON; nothing inline, nothing framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Production without `INTERNAL_API_TOKEN` has no operator routes, so no page for them.
fn page_exists(state: &AppState) -> Result<(), ApiError> {
    if state.settings.internal_api_token.is_none() && state.settings.is_production() {
        Err(ApiError::NotFound("Route not found".to_owned()))
    } else {
        Ok(())
    }
}

pub async fn dashboard_page(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    page_exists(&state)?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE))
}

pub async fn dashboard_asset(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    page_exists(&state)?;
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == name.as_str())
        .ok_or_else(|| ApiError::NotFound("The dashboard has no such file".to_owned()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, *content_type))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Compiled in: a new binary is the only way they change, and a restart is rare
        // enough that a short cache suffices.
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(*body))
}
