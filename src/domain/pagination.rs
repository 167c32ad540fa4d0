//! `page` / `limit` query bounds shared by the paginated routes.

use serde::Serialize;

use super::workflow::FieldError;

pub const MAX_PAGE_SIZE: u32 = 100;
pub const DEFAULT_PAGE_SIZE: u32 = 20;

#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub page: u32,
    pub limit: u32,
}

impl Page {
    /// Checks the bounds, adding one error per offending field.
    pub fn parse(page: Option<u32>, limit: Option<u32>, errors: &mut Vec<FieldError>) -> Self {
        let page = page.unwrap_or(1);
        if page == 0 {
            errors.push(FieldError::new("page", "must be 1 or more"));
        }
        let limit = limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be 1-{MAX_PAGE_SIZE}"),
            ));
        }
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
