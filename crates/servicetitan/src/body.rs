//! Reading response bodies within a size cap: a server can announce or send any amount, and the client must never hold more than it is willing to.

use bytes::{Bytes, BytesMut};

/// The largest API response body the client reads: far above any page a real server sends
/// (a page of 5,000 large records is a few tens of MiB), low enough that a server sending
/// without end cannot exhaust memory. A larger answer is a `decode` error.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The largest token response the client reads: a token answer is a few hundred bytes.
pub const MAX_TOKEN_RESPONSE_BYTES: usize = 64 * 1024;

/// How much of an error response (4xx, 5xx) is read: its title, trace id and field errors fit
/// in far less, and the rest is not worth holding.
pub(crate) const MAX_ERROR_BODY_BYTES: usize = 1024 * 1024;

/// A body read within a cap.
pub(crate) enum Capped {
    /// The whole body.
    Whole(Bytes),
    /// The body went past the cap: its first `cap` bytes (the rest was not read).
    Cut(Bytes),
}

/// Whether the response announces a body larger than `cap` (refused before reading a byte).
pub(crate) fn announced_over(response: &reqwest::Response, cap: usize) -> Option<u64> {
    response.content_length().filter(|&n| n > cap as u64)
}

/// Reads the body chunk by chunk, never holding more than `cap` bytes.
///
/// A body that arrives in one chunk (most answers) is returned without a copy.
pub(crate) async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Capped, reqwest::Error> {
    let Some(first) = response.chunk().await? else {
        return Ok(Capped::Whole(Bytes::new()));
    };
    if first.len() > cap {
        return Ok(Capped::Cut(first.slice(..cap)));
    }
    let Some(second) = response.chunk().await? else {
        return Ok(Capped::Whole(first));
    };
    // The announced length (already checked against the cap) sizes the buffer once; without
    // one it grows as chunks come.
    let expected = response.content_length().map_or(0, |n| n as usize).max(first.len() + second.len());
    let mut body = BytesMut::with_capacity(expected.min(cap));
    let mut next = Some(first);
    let mut pending = Some(second);
    while let Some(chunk) = next.take() {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok(Capped::Cut(body.freeze()));
        }
        body.extend_from_slice(&chunk);
        next = match pending.take() {
            Some(chunk) => Some(chunk),
            None => response.chunk().await?,
        };
    }
    Ok(Capped::Whole(body.freeze()))
}

/// A cap in words for messages: "256 MiB", "64 KiB".
pub(crate) fn size_in_words(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}
