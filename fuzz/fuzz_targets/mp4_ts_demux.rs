//! The input demuxers of `sealcast package` (`demux::mp4`, `demux::ts`): no
//! input may panic or allocate without bound. The first byte picks the
//! reading: even, an MP4 file walked as `sealcast package` walks it (top-level
//! box headers, the `moov` parsed, its sample tables iterated, every `moof`'s
//! fragment read); odd, an MPEG-TS file fed packet by packet. Every sample
//! the MP4 side reports must lie inside the input or be refused by the
//! caller's bounds check, which the target replays.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealcast_core::demux::mp4::{self, Movie};
use sealcast_core::demux::ts;

/// Samples iterated per table: enough to walk every table the fuzzer can
/// build in a small input, while a declared count of millions stays cheap.
const MAX_ITERATED: usize = 100_000;

fn mp4_file(data: &[u8]) {
    let mut movie = None;
    let mut moofs = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        let Ok(Some(header)) = mp4::box_header(&data[pos..]) else { break };
        let size = header.size.unwrap_or((data.len() - pos) as u64);
        let Some(end) = usize::try_from(size).ok().and_then(|s| pos.checked_add(s)) else { break };
        if end > data.len() {
            break;
        }
        let body = &data[pos + header.header_len as usize..end];
        match &header.kind.0 {
            b"moov" if movie.is_none() => movie = Movie::parse(body).ok(),
            b"moof" => moofs.push((pos, body)),
            _ => {}
        }
        pos = end;
    }
    let Some(mut movie) = movie else { return };
    for (info, table) in [&movie.video, &movie.audio].into_iter().flatten() {
        assert!(info.timescale > 0);
        for sample in table.samples().take(MAX_ITERATED) {
            let Ok(sample) = sample else { break };
            assert_eq!(sample.track, info.kind);
        }
    }
    for (offset, moof) in moofs {
        if let Ok(samples) = movie.fragment(moof, offset as u64) {
            assert!(samples.len() as u64 <= 1 << 18);
        }
    }
}

fn ts_file(data: &[u8]) {
    let mut demuxer = ts::Demuxer::new();
    let mut tags = Vec::new();
    for packet in data.chunks_exact(188) {
        if demuxer.push(packet, &mut tags).is_err() {
            break;
        }
        for tag in tags.drain(..) {
            assert!(tag.body.len() >= 2);
        }
    }
    let _ = demuxer.finish(&mut tags);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    if mode % 2 == 0 { mp4_file(rest) } else { ts_file(rest) }
});
