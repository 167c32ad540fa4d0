//! What every layer needs to report a failure in a log line (no layer below the web layer
//! may import the web layer's error type for it).

/// `a: b: c` for an error and its sources, logged once at the boundary.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

tokio::task_local! {
    /// The id of the request the running task serves (`X-Request-ID`).
    static REQUEST_ID: String;
}

/// Runs `future` as the work of request `id`: [`with_request_id`] sees the id, and so every
/// log line written meanwhile carries it (the binary's log format appends `req=<id>`).
pub async fn in_request<F: std::future::Future>(id: String, future: F) -> F::Output {
    REQUEST_ID.scope(id, future).await
}

/// Lends the id of the request the running task serves, `None` outside a request.
pub fn with_request_id<R>(mut use_id: impl FnMut(Option<&str>) -> R) -> R {
    match REQUEST_ID.try_with(|id| use_id(Some(id))) {
        Ok(result) => result,
        Err(_) => use_id(None),
    }
}

/// `future` as the work of the request the running task serves, if any: for work a request
/// hands to a task of its own (a shared cache load), so that task's log lines name it too.
pub fn carry_request_id<F: std::future::Future>(
    future: F,
) -> impl std::future::Future<Output = F::Output> {
    let id = REQUEST_ID.try_with(String::clone).ok();
    async move {
        match id {
            Some(id) => REQUEST_ID.scope(id, future).await,
            None => future.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_request_id_is_seen_inside_its_scope_and_carried_into_spawned_work() {
        assert_eq!(with_request_id(|id| id.map(str::to_owned)), None);
        let (inside, carried) = in_request("req-1".to_owned(), async {
            let inside = with_request_id(|id| id.map(str::to_owned));
            let carried = tokio::spawn(carry_request_id(async {
                with_request_id(|id| id.map(str::to_owned))
            }))
            .await
            .unwrap_or_default();
            (inside, carried)
        })
        .await;
        assert_eq!(inside.as_deref(), Some("req-1"));
        assert_eq!(carried.as_deref(), Some("req-1"));
    }
}
