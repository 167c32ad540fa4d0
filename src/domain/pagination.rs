//! `page` / `limit` query bounds shared by the paginated routes.

use serde::Serialize;

use super::workflow::FieldError;

pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// The highest `page` accepted (the OpenAPI document's `maximum`): past the last page a
/// client gets an empty page, past this a 422 naming the field.
pub const MAX_PAGE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: u32,
    pub limit: u32,
}

impl Page {
    /// Checks the bounds, adding one error per offending field. The query is read as `u64`
    /// so that any number past a bound is this 422 naming the field, not a parse error.
    pub fn parse(page: Option<u64>, limit: Option<u64>, errors: &mut Vec<FieldError>) -> Self {
        let page = match page.map(u32::try_from) {
            None => 1,
            Some(Ok(page)) if page >= 1 => page,
            Some(_) => {
                errors.push(FieldError::new("page", format!("must be 1-{MAX_PAGE}")));
                1
            }
        };
        let limit = match limit.map(u32::try_from) {
            None => DEFAULT_PAGE_SIZE,
            Some(Ok(limit)) if (1..=MAX_PAGE_SIZE).contains(&limit) => limit,
            Some(_) => {
                errors.push(FieldError::new(
                    "limit",
                    format!("must be 1-{MAX_PAGE_SIZE}"),
                ));
                DEFAULT_PAGE_SIZE
            }
        };
        Self { page, limit }
    }

    pub fn offset(self) -> usize {
        (self.page.saturating_sub(1) as usize).saturating_mul(self.limit as usize)
    }

    pub fn describe(self, total: usize) -> Pagination {
        Pagination {
            page: self.page,
            limit: self.limit,
            total,
            has_more: self.offset().saturating_add(self.limit as usize) < total,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    #[schema(minimum = 1)]
    pub page: u32,
    #[schema(minimum = 1, maximum = 100)]
    pub limit: u32,
    pub total: usize,
    pub has_more: bool,
}
