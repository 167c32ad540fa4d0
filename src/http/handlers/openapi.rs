//! `GET /openapi.json`: the document generated from the route table and the types
//! (`http::openapi_document`), written once at startup.

use actix_web::http::header::ContentType;
use actix_web::{web, HttpResponse};

/// The document's text, as `openapi::to_text` writes it (and `openapi.json` holds it).
pub struct ServedDocument(pub web::Bytes);

impl ServedDocument {
    pub fn generate() -> Result<Self, serde_json::Error> {
        let text = crate::http::openapi::to_text(&crate::http::openapi_document())?;
        Ok(Self(web::Bytes::from(text)))
    }
}

pub async fn openapi_document(document: web::Data<ServedDocument>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .insert_header(("Cache-Control", "public, max-age=300"))
        .body(document.0.clone())
}
