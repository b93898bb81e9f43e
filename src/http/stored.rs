//! Segments served from object storage (`[storage] backend = "s3"`): the
//! object's size from a HEAD, then the requested range (RFC 9110 14.2) or
//! the whole object in one GET. Storage trouble is a 503, never a 500.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use super::{SEGMENT_CACHE, parse_range, status};
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
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (start, end) = match range.map(|r| parse_range(r, len)) {
        None => (0, len),
        Some(Some(range)) => range,
        Some(None) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                "range not satisfiable\n",
            )
                .into_response();
        }
    };
    let body = match range {
        None => storage.get(key).await,
        Some(_) => storage.get_range(key, start..end).await,
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
    response
        .headers_mut()
        .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    response
}
