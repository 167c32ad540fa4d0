//! Pages of a location's workflow list, cut from the cached summary list without parsing it
//! on every request.
//!
//! The whole list of a location is one cache entry (a JSON array of summaries). Parsing it to
//! serve a page of 20 costs as much as the location has workflows, so each L1 hit's list is
//! split into its elements once and the split is kept beside it. A split is only ever used
//! for the very bytes it was made from: it holds them (a reference count, no copy), so the
//! address of a list it holds cannot be reused by another one, and a list read after a write
//! is a new allocation with a new split.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::domain::pagination::Page;
use crate::domain::workflow::WorkflowStatus;
use crate::repository::{Fetched, ReadSource, WorkflowSummary};

/// Locations whose split lists are kept, and the bytes of lists they may hold between them
/// (a list L1 has dropped stays alive while its split does).
const KEPT_LISTS: usize = 64;
const KEPT_LIST_BYTES: u64 = 16 * 1024 * 1024;

/// The split lists of the busiest locations.
pub struct SummaryPages {
    splits: quick_cache::sync::Cache<String, Arc<SplitList>, SplitWeigher>,
}

impl Default for SummaryPages {
    fn default() -> Self {
        Self {
            splits: quick_cache::sync::Cache::with_weighter(
                KEPT_LISTS,
                KEPT_LIST_BYTES,
                SplitWeigher,
            ),
        }
    }
}

impl SummaryPages {
    /// The `data` of one page of `list`: `{workflows, count, pagination}`, as the list
    /// endpoint answers it.
    pub fn page(
        &self,
        location_id: &str,
        list: &Fetched<Vec<WorkflowSummary>>,
        status: Option<&str>,
        page: Page,
    ) -> Result<Vec<u8>, serde_json::Error> {
        Ok(self.split_of(location_id, list)?.page_json(status, page))
    }

    fn split_of(
        &self,
        location_id: &str,
        list: &Fetched<Vec<WorkflowSummary>>,
    ) -> Result<Arc<SplitList>, serde_json::Error> {
        // Only an L1 hit is served again from the same bytes; any other read is split once.
        if list.source != (ReadSource::Hit { tier: "l1" }) {
            return Ok(Arc::new(SplitList::new(list.json.clone())?));
        }
        if let Some(split) = self.splits.get(location_id) {
            if split.is_of(&list.json) {
                return Ok(split);
            }
        }
        let split = Arc::new(SplitList::new(list.json.clone())?);
        self.splits
            .insert(location_id.to_owned(), Arc::clone(&split));
        Ok(split)
    }
}

#[derive(Clone)]
struct SplitWeigher;

impl quick_cache::Weighter<String, Arc<SplitList>> for SplitWeigher {
    fn weight(&self, _: &String, split: &Arc<SplitList>) -> u64 {
        split.json.len() as u64 + 1
    }
}

/// A summary list and where each summary is in it.
struct SplitList {
    json: Bytes,
    summaries: Vec<Summary>,
}

struct Summary {
    at: Range<usize>,
    /// `None` for any status but the two the list's filter accepts.
    status: Option<WorkflowStatus>,
}

/// A stored status as the filter tells them apart: nothing is allocated per summary.
fn filterable_status(text: &str) -> Option<WorkflowStatus> {
    match text {
        "draft" => Some(WorkflowStatus::Draft),
        "published" => Some(WorkflowStatus::Published),
        _ => None,
    }
}

impl SplitList {
    fn new(json: Bytes) -> Result<Self, serde_json::Error> {
        #[derive(Deserialize)]
        struct StatusOnly<'a> {
            #[serde(borrow)]
            status: std::borrow::Cow<'a, str>,
        }
        let elements: Vec<&RawValue> = serde_json::from_slice(&json)?;
        let base = json.as_ptr() as usize;
        let summaries = elements
            .iter()
            .map(|element| {
                // A borrowed RawValue is a slice of `json` itself.
                let start = element.get().as_ptr() as usize - base;
                Summary {
                    at: start..start + element.get().len(),
                    status: serde_json::from_str::<StatusOnly>(element.get())
                        .ok()
                        .and_then(|summary| filterable_status(&summary.status)),
                }
            })
            .collect();
        Ok(Self { json, summaries })
    }

    /// Whether this split was made from these very bytes.
    fn is_of(&self, json: &Bytes) -> bool {
        self.json.as_ptr() == json.as_ptr() && self.json.len() == json.len()
    }

    fn page_json(&self, status: Option<&str>, page: Page) -> Vec<u8> {
        // Any other status matches no summary, as a string comparison would.
        let wanted = status.map(filterable_status);
        let matching: Vec<&Summary> = self
            .summaries
            .iter()
            .filter(|summary| {
                wanted
                    .as_ref()
                    .is_none_or(|wanted| wanted.is_some() && summary.status == *wanted)
            })
            .collect();
        let start = page.offset().min(matching.len());
        let end = start
            .saturating_add(page.limit as usize)
            .min(matching.len());
        let shown = &matching[start..end];
        let mut data = Vec::with_capacity(
            shown
                .iter()
                .map(|summary| summary.at.len() + 1)
                .sum::<usize>()
                + 128,
        );
        data.extend_from_slice(br#"{"workflows":["#);
        for (n, summary) in shown.iter().enumerate() {
            if n > 0 {
                data.push(b',');
            }
            data.extend_from_slice(&self.json[summary.at.clone()]);
        }
        data.extend_from_slice(br#"],"count":"#);
        data.extend_from_slice(itoa::Buffer::new().format(shown.len()).as_bytes());
        data.extend_from_slice(br#","pagination":"#);
        // A struct of numbers and a bool into a Vec: serializing cannot fail.
        let _ = serde_json::to_writer(&mut data, &page.describe(matching.len()));
        data.push(b'}');
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn list_json() -> Bytes {
        let summaries: Vec<Value> = (1..=7)
            .map(|n| {
                json!({
                    "id": format!("wf-{n}"),
                    "name": format!("Workflow \"{n}\", [x]"),
                    "status": match n {
                        7 => "archived",
                        n if n % 2 == 0 => "draft",
                        _ => "published",
                    },
                    "version": n,
                })
            })
            .collect();
        Bytes::from(serde_json::to_vec(&summaries).unwrap())
    }

    /// What the list endpoint answered before splits: the array parsed per request.
    fn parsed_page(json: &[u8], status: Option<&str>, page: Page) -> Value {
        let all: Vec<Value> = serde_json::from_slice(json).unwrap();
        let matching: Vec<Value> = all
            .into_iter()
            .filter(|summary| status.is_none_or(|status| summary["status"] == status))
            .collect();
        let start = page.offset().min(matching.len());
        let end = (start + page.limit as usize).min(matching.len());
        json!({
            "workflows": matching[start..end],
            "count": end - start,
            "pagination": page.describe(matching.len()),
        })
    }

    #[test]
    fn every_page_equals_the_page_of_the_parsed_list() {
        let json = list_json();
        let split = SplitList::new(json.clone()).unwrap();
        for status in [None, Some("draft"), Some("published")] {
            for (page, limit) in [(1, 20), (1, 3), (2, 3), (3, 3), (4, 3), (9, 1)] {
                let page = Page { page, limit };
                let served: Value = serde_json::from_slice(&split.page_json(status, page)).unwrap();
                assert_eq!(
                    served,
                    parsed_page(&json, status, page),
                    "{status:?} {page:?}"
                );
            }
        }
    }

    #[test]
    fn a_split_is_reused_only_for_the_bytes_it_was_made_from() {
        let pages = SummaryPages::default();
        let first = Fetched::from_json(list_json(), ReadSource::Hit { tier: "l1" });
        let same_content_new_bytes =
            Fetched::from_json(list_json(), ReadSource::Hit { tier: "l1" });

        let a = pages.split_of("loc", &first).unwrap();
        let b = pages.split_of("loc", &first).unwrap();
        let c = pages.split_of("loc", &same_content_new_bytes).unwrap();

        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        assert!(c.is_of(&same_content_new_bytes.json));
    }

    #[test]
    fn reads_other_than_l1_hits_are_split_but_not_kept() {
        let pages = SummaryPages::default();
        let from_redis = Fetched::from_json(list_json(), ReadSource::Hit { tier: "l2" });

        let a = pages.split_of("loc", &from_redis).unwrap();
        let b = pages.split_of("loc", &from_redis).unwrap();

        assert!(!Arc::ptr_eq(&a, &b));
        assert!(pages.splits.get("loc").is_none());
    }

    #[test]
    fn a_list_that_is_not_an_array_is_an_error() {
        assert!(SplitList::new(Bytes::from_static(br#"{"a":1}"#)).is_err());
    }
}
