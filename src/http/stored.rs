//! Segments served from object storage (`[storage] backend = "s3"`): the
//! object's size from a HEAD, then the requested range (RFC 9110 14.2) or
//! the whole object in one GET. Storage trouble is a 503, never a 500.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::{SEGMENT_CACHE, SegmentRange, status};
use crate::storage::Storage;

/// Answers a GET of the segment stored under `key`.
pub(super) async fn serve_segment(storage: &Storage, key: &str, headers: &HeaderMap) -> Response {
    let unavailable = |error: crate::storage::StorageError| {
        warn!(%error, "reading a segment from storage failed");
        status(StatusCode::SERVICE_UNAVAILABLE, "segment unavailable\n")
    };
    let len = match storage.head(key).await {
        Ok(Some(len)) => len,
        Ok(None) => return status(StatusCode::NOT_FOUND, "not found\n"),
        Err(error) => return unavailable(error),
    };
    let range = match SegmentRange::requested(headers, len) {
        Ok(range) => range,
        Err(unsatisfiable) => return unsatisfiable.into_response(),
    };
    let body = if range.partial {
        storage.get_range(key, range.start..range.end).await
    } else {
        storage.get(key).await
    };
    let body = match body {
        Ok(Some(body)) => body,
        Ok(None) => return status(StatusCode::NOT_FOUND, "not found\n"),
        Err(error) => return unavailable(error),
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, "video/mp2t"),
            (header::CACHE_CONTROL, SEGMENT_CACHE),
        ],
        body,
    )
        .into_response();
    range.mark(&mut response);
    response
}
