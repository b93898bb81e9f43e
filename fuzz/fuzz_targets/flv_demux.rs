//! FLV tag bodies, as RTMP audio/video/data messages carry them, into
//! `flv::Demuxer`: no input may panic, and every access unit it returns must
//! be well-formed Annex B / ADTS. The input is read both as an FLV file and as
//! carved records (see `sealcast_fuzz::for_each_record`), so the file header
//! and tag parsers are covered too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealcast_core::flv::Demuxer;
use sealcast_fuzz::{check_access_unit, for_each_record};

fuzz_target!(|data: &[u8]| {
    let mut demuxers = [Demuxer::new(), Demuxer::new()];
    for_each_record(data, |pass, (kind, timestamp_ms, body)| {
        let demuxer = &mut demuxers[pass];
        if let Ok(Some(au)) = demuxer.push(kind, timestamp_ms, body) {
            check_access_unit(&au);
        }
        // Cheap accessors must stay usable after any input.
        let _ = demuxer.tracks();
        let _ = demuxer.metadata();
    });
});
