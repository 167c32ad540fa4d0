//! `GET /openapi.json`: the OpenAPI 3 document of every route (hand-written beside
//! `Cargo.toml`, kept equal to the route table by `tests/api/openapi.rs`).

use actix_web::http::header::ContentType;
use actix_web::HttpResponse;

pub const OPENAPI_DOCUMENT: &str = include_str!("../../../openapi.json");

pub async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(OPENAPI_DOCUMENT)
}
