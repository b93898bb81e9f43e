//! The last segments a publish stored in object storage, kept in memory so
//! the ingest node serves them itself: no storage round trip per viewer
//! request, and no 5xx for a listed segment while storage is down or slow
//! (docs/cluster.md, "When object storage fails"). With segments on local
//! disk the same store keeps the few segments viewers asked for lately
//! (`http::serve_local_segment`), read once for all of them.
//!
//! Only segments that were stored *and* listed go in (the upload task puts
//! them after the playlist that lists them is written), so serving from here
//! never reveals a segment before storage holds it. The ciphertext pieces
//! are the ones the upload sent (`Bytes`: no copy). A segment stays until
//! [`RecentSegments::capacity`] newer ones arrived: the playlist window plus
//! as many again, which covers the RFC 8216 6.2.2 grace during which a
//! segment that left the playlist must stay fetchable.
//!
//! Every stream's store draws on one node-wide [`SegmentMemory`]
//! (`[http.limits] segment_memory_mb`): a segment that would take it past
//! its cap is not kept, and is served from disk or storage instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// The bytes all streams' [`RecentSegments`] hold, against a node-wide cap.
#[derive(Debug)]
pub struct SegmentMemory {
    held: AtomicU64,
    cap_bytes: u64,
}

impl SegmentMemory {
    pub fn new(cap_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicU64::new(0),
            cap_bytes,
        })
    }

    /// Bytes held now, by every stream (the `sealcast_segment_memory_bytes` gauge).
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Bytes that can still be kept before the cap.
    pub fn room(&self) -> u64 {
        self.cap_bytes.saturating_sub(self.held())
    }

    fn reserve(&self, bytes: u64) -> bool {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(bytes).filter(|&total| total <= self.cap_bytes)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        self.held.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// One stream's recently stored segments, newest last.
pub struct RecentSegments {
    entries: Mutex<VecDeque<(String, Arc<[Bytes]>)>>,
    memory: Arc<SegmentMemory>,
}

impl RecentSegments {
    pub fn new(memory: Arc<SegmentMemory>) -> Self {
        Self {
            entries: Mutex::default(),
            memory,
        }
    }

    /// Segments kept for a playlist window of `window` segments: the window,
    /// and as many again for the removed segments' grace period.
    pub fn capacity(window: usize) -> usize {
        2 * window + 1
    }

    /// Keeps `file`'s ciphertext, dropping the oldest past `capacity`;
    /// `false` (and nothing kept) when the node's segment memory is full.
    pub fn insert(&self, file: String, pieces: Arc<[Bytes]>, capacity: usize) -> bool {
        let mut entries = self.lock();
        let mut dropped = 0;
        entries.retain(|(name, old)| {
            let keep = *name != file;
            if !keep {
                dropped += byte_len(old);
            }
            keep
        });
        while entries.len() >= capacity.max(1) {
            dropped += entries.pop_front().map_or(0, |(_, old)| byte_len(&old));
        }
        self.memory.release(dropped);
        if !self.memory.reserve(byte_len(&pieces)) {
            return false;
        }
        entries.push_back((file, pieces));
        true
    }

    /// Bytes the node's segment memory can still take.
    pub fn room(&self) -> u64 {
        self.memory.room()
    }

    /// The ciphertext of `file` (`{publish_id}-{seq}.ts`), if it is kept.
    pub fn get(&self, file: &str) -> Option<Arc<[Bytes]>> {
        let entries = self.lock();
        entries
            .iter()
            .rev()
            .find(|(name, _)| name == file)
            .map(|(_, pieces)| Arc::clone(pieces))
    }

    /// Forgets every segment: the stream's playlist ended.
    pub fn clear(&self) {
        let dropped = self.lock().drain(..).map(|(_, pieces)| byte_len(&pieces)).sum();
        self.memory.release(dropped);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, Arc<[Bytes]>)>> {
        // Nothing here can be left half-changed by a panic.
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for RecentSegments {
    fn drop(&mut self) {
        self.clear();
    }
}

fn byte_len(pieces: &[Bytes]) -> u64 {
    pieces.iter().map(|piece| piece.len() as u64).sum()
}

/// The bytes `start..end` of an object held as `pieces`, as sub-slices of
/// the pieces (no copy).
pub fn slice_pieces(pieces: &[Bytes], start: u64, end: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for piece in pieces {
        let len = piece.len() as u64;
        let (from, to) = (start.max(offset), end.min(offset + len));
        if from < to {
            out.push(piece.slice((from - offset) as usize..(to - offset) as usize));
        }
        offset += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(parts: &[&'static [u8]]) -> Arc<[Bytes]> {
        parts.iter().map(|p| Bytes::from_static(p)).collect()
    }

    #[test]
    fn keeps_the_newest_up_to_capacity() {
        let recent = RecentSegments::new(SegmentMemory::new(u64::MAX));
        for seq in 0..5 {
            recent.insert(format!("p-{seq}.ts"), pieces(&[b"x"]), 3);
        }
        assert!(recent.get("p-1.ts").is_none());
        assert!(recent.get("p-2.ts").is_some());
        assert!(recent.get("p-4.ts").is_some());
        assert_eq!(RecentSegments::capacity(6), 13);
    }

    #[test]
    fn streams_share_the_node_cap() {
        let memory = SegmentMemory::new(10);
        let (a, b) = (
            RecentSegments::new(Arc::clone(&memory)),
            RecentSegments::new(Arc::clone(&memory)),
        );
        assert!(a.insert("a-0.ts".into(), pieces(&[b"0123", b"45"]), 3));
        assert!(!b.insert("b-0.ts".into(), pieces(&[b"012345"]), 3), "6 + 6 > 10");
        assert!(b.get("b-0.ts").is_none());
        assert!(b.insert("b-0.ts".into(), pieces(&[b"0123"]), 3));
        assert_eq!(memory.held(), 10);
        assert_eq!(a.room(), 0);
        // Replacing an entry, evicting past capacity, clearing and dropping all give back.
        assert!(a.insert("a-0.ts".into(), pieces(&[b"01"]), 3));
        assert_eq!(memory.held(), 6);
        for seq in 1..4 {
            assert!(a.insert(format!("a-{seq}.ts"), pieces(&[b"x"]), 3));
        }
        assert!(a.get("a-0.ts").is_none());
        assert_eq!(memory.held(), 4 + 3);
        a.clear();
        assert_eq!(memory.held(), 4);
        drop(b);
        assert_eq!(memory.held(), 0);
    }

    #[test]
    fn slices_across_pieces() {
        let all = pieces(&[b"0123", b"45", b"6789"]);
        let join = |v: Vec<Bytes>| v.concat();
        // (start, end, expected)
        let table: &[(u64, u64, &[u8])] = &[
            (0, 10, b"0123456789"),
            (2, 5, b"234"),
            (4, 6, b"45"),
            (5, 9, b"5678"),
            (9, 10, b"9"),
            (3, 3, b""),
        ];
        for &(start, end, want) in table {
            assert_eq!(join(slice_pieces(&all, start, end)), want, "{start}..{end}");
        }
    }
}
