//! Segments served from object storage (`[storage] backend = "s3"`): the
//! object's size from a HEAD, then the requested range (RFC 9110 14.2) or
//! the whole object in one GET; or, on the ingest node that stored it, from
//! its memory ([`serve_pieces`]). Storage trouble is never a 500: a read that
//! fails is tried once more, then answered 503 with `Retry-After` (see
//! docs/cluster.md, "When object storage fails").

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tracing::warn;

use super::{SEGMENT_CACHE, SegmentRange, status, unavailable};
use crate::storage::{Storage, StorageError};

/// Wait before the one retry of a failed read: S3's 500 and 503 (SlowDown)
/// are transient by definition, and a viewer's player waits seconds anyway.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(250);

/// Answers a GET of the segment stored under `key`.
pub(super) async fn serve_segment(storage: &Storage, key: &str, headers: &HeaderMap) -> Response {
    match read_segment(storage, key, headers).await {
        Ok(response) => response,
        Err(first) => {
            warn!(error = %first, "reading a segment from storage failed; trying once more");
            tokio::time::sleep(RETRY_AFTER_FAILURE).await;
            match read_segment(storage, key, headers).await {
                Ok(response) => response,
                Err(error) => {
                    warn!(%error, "reading a segment from storage failed again: 503");
                    unavailable("segment unavailable\n")
                }
            }
        }
    }
}

async fn read_segment(storage: &Storage, key: &str, headers: &HeaderMap) -> Result<Response, StorageError> {
    let Some(len) = storage.head(key).await? else {
        return Ok(status(StatusCode::NOT_FOUND, "not found\n"));
    };
    let range = match SegmentRange::requested(headers, len) {
        Ok(range) => range,
        Err(unsatisfiable) => return Ok(unsatisfiable.into_response()),
    };
    let body = if range.partial {
        storage.get_range(key, range.start..range.end).await?
    } else {
        storage.get(key).await?
    };
    let Some(body) = body else {
        return Ok(status(StatusCode::NOT_FOUND, "not found\n"));
    };
    Ok(segment_response(Body::from(body), &range))
}

/// Answers a GET of a segment this node holds in memory as `pieces` (the
/// ciphertext it stored), `Range` included; no storage request.
pub(super) fn serve_pieces(pieces: &[Bytes], headers: &HeaderMap) -> Response {
    let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    let range = match SegmentRange::requested(headers, len) {
        Ok(range) => range,
        Err(unsatisfiable) => return unsatisfiable.into_response(),
    };
    let parts = crate::live::slice_pieces(pieces, range.start, range.end);
    let body = Body::from_stream(futures_util::stream::iter(
        parts.into_iter().map(Ok::<_, std::convert::Infallible>),
    ));
    let mut response = segment_response(body, &range);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, (range.end - range.start).into());
    response
}

fn segment_response(body: Body, range: &SegmentRange) -> Response {
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
