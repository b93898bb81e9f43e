use super::*;

use message_type::{ABORT, AUDIO, COMMAND_AMF0, SET_CHUNK_SIZE, VIDEO};

fn decode_all(limits: ChunkLimits, input: &[u8]) -> (Vec<Message>, Result<(), ChunkError>) {
    let mut decoder = ChunkDecoder::new(limits);
    let mut out = Vec::new();
    let result = decoder.handle_input(input, &mut out);
    (out, result)
}

fn message(csid: u32, type_id: u8, stream_id: u32, timestamp_ms: u32, payload: &[u8]) -> Message {
    Message {
        csid,
        type_id,
        stream_id,
        timestamp_ms,
        payload: Bytes::copy_from_slice(payload),
    }
}

/// Feeds `input` in pieces of every size from 1 to 7 and whole; every
/// split must give the same messages.
fn assert_split_invariant(limits: ChunkLimits, input: &[u8], want: &[Message]) {
    for piece in (1..=7).chain([input.len().max(1)]) {
        let mut decoder = ChunkDecoder::new(limits);
        let mut out = Vec::new();
        for part in input.chunks(piece) {
            decoder.handle_input(part, &mut out).unwrap();
        }
        assert_eq!(out, want, "pieces of {piece}");
    }
}

#[test]
fn header_types_and_basic_header_forms() {
    type Case = (&'static str, Vec<u8>, Vec<Message>);
    let cases: Vec<Case> = vec![
        (
            "type 0, 1-byte basic header",
            vec![
                0x04, 0x00, 0x00, 0x64, 0x00, 0x00, 0x03, 0x09, 0x01, 0x00, 0x00, 0x00, 0xAA, 0xBB, 0xCC,
            ],
            vec![message(4, VIDEO, 1, 100, &[0xAA, 0xBB, 0xCC])],
        ),
        (
            "type 0, 2-byte basic header (csid 64 + 36)",
            vec![
                0x00, 36, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x55,
            ],
            vec![message(100, AUDIO, 0, 1, &[0x55])],
        ),
        (
            "type 0, 3-byte basic header (csid 65599)",
            vec![
                0x01, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x77,
            ],
            vec![message(65599, AUDIO, 2, 0, &[0x77])],
        ),
        (
            "type 1 then type 2 then type 3: deltas sum, length and type carry",
            vec![
                // type 0: ts 1000, len 1, audio, stream 1
                0x05, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x01, 0x08, 0x01, 0x00, 0x00, 0x00, 0x01,
                // type 1: delta 20, len 2, video
                0x45, 0x00, 0x00, 0x14, 0x00, 0x00, 0x02, 0x09, 0x02, 0x03, // type 2: delta 30
                0x85, 0x00, 0x00, 0x1E, 0x04, 0x05, // type 3: new message, delta 30 again
                0xC5, 0x06, 0x07,
            ],
            vec![
                message(5, AUDIO, 1, 1000, &[0x01]),
                message(5, VIDEO, 1, 1020, &[0x02, 0x03]),
                message(5, VIDEO, 1, 1050, &[0x04, 0x05]),
                message(5, VIDEO, 1, 1080, &[0x06, 0x07]),
            ],
        ),
        (
            "type 3 after type 0 uses the type 0 timestamp as delta (spec 5.3.1.2.4)",
            vec![
                0x06, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x01, 0x08, 0x01, 0x00, 0x00, 0x00, 0x01, 0xC6, 0x02,
            ],
            vec![message(6, AUDIO, 1, 10, &[0x01]), message(6, AUDIO, 1, 20, &[0x02])],
        ),
        (
            "zero-length message",
            vec![0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00],
            vec![message(3, COMMAND_AMF0, 0, 0, &[])],
        ),
        (
            "deltas wrap at 2^32",
            vec![
                0x04, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x01, 0x09, 0x01, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xF0, 0x01,
                0x84, 0x00, 0x00, 0x20, 0x02,
            ],
            vec![
                message(4, VIDEO, 1, 0xFFFF_FFF0, &[0x01]),
                message(4, VIDEO, 1, 0x10, &[0x02]),
            ],
        ),
    ];
    for (name, input, want) in cases {
        let (got, result) = decode_all(ChunkLimits::default(), &input);
        assert_eq!(result, Ok(()), "{name}");
        assert_eq!(got, want, "{name}");
        assert_split_invariant(ChunkLimits::default(), &input, &want);
    }
}

/// A 200-byte video message at chunk size 128 with timestamp 0x01000000:
/// extended timestamp on the type 0 header, and on the type 3
/// continuation either repeated (ffmpeg, librtmp) or not (some others).
#[test]
fn extended_timestamps_with_and_without_repetition() {
    let payload: Vec<u8> = (0..200_u32).map(|i| (i * 7) as u8).collect();
    let ts: u32 = 0x0100_0000;
    let mut head = vec![0x04, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 200, 0x09, 0x01, 0x00, 0x00, 0x00];
    head.extend_from_slice(&ts.to_be_bytes());
    head.extend_from_slice(&payload[..128]);
    let mut repeated = head.clone();
    repeated.push(0xC4);
    repeated.extend_from_slice(&ts.to_be_bytes());
    repeated.extend_from_slice(&payload[128..]);
    let mut not_repeated = head.clone();
    not_repeated.push(0xC4);
    not_repeated.extend_from_slice(&payload[128..]);
    let want = vec![message(4, VIDEO, 1, ts, &payload)];
    for (name, input) in [("repeated", repeated), ("not repeated", not_repeated)] {
        let (got, result) = decode_all(ChunkLimits::default(), &input);
        assert_eq!(result, Ok(()), "{name}");
        assert_eq!(got, want, "{name}");
        assert_split_invariant(ChunkLimits::default(), &input, &want);
    }

    // Our encoder repeats it, and a following type 3 message (delta =
    // the extended value) keeps working.
    let mut encoded = Vec::new();
    encode_message(&mut encoded, 128, 4, VIDEO, 1, ts, &payload);
    encoded.extend_from_slice(&[0xC4, 0x01, 0x00, 0x00, 0x00]);
    encoded.extend_from_slice(&payload[..128]);
    encoded.extend_from_slice(&[0xC4, 0x01, 0x00, 0x00, 0x00]);
    encoded.extend_from_slice(&payload[128..]);
    let want = vec![
        message(4, VIDEO, 1, ts, &payload),
        message(4, VIDEO, 1, ts.wrapping_mul(2), &payload),
    ];
    assert_split_invariant(ChunkLimits::default(), &encoded, &want);
}

/// The message shape rml_rtmp's client writes for ts >= 0xFFFFFF must
/// decode too (its serializer is an independent implementation).
#[test]
fn decodes_rml_rtmp_serializer_output() {
    use rml_rtmp::chunk_io::ChunkSerializer;
    use rml_rtmp::messages::MessagePayload;
    use rml_rtmp::time::RtmpTimestamp;

    let mut serializer = ChunkSerializer::new();
    let mut bytes = serializer
        .set_max_chunk_size(1000, RtmpTimestamp::new(0))
        .unwrap()
        .bytes;
    let mut want = Vec::new();
    for (i, ts) in [0_u32, 33, 66, 0x00FF_FFFF, 0x0100_0021, 0x0100_0042, 5]
        .into_iter()
        .enumerate()
    {
        let data: Bytes = (0..(500 + 700 * i as u32)).map(|b| (b + i as u32) as u8).collect();
        let type_id = if i % 2 == 0 { VIDEO } else { AUDIO };
        let payload = MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: 1,
            data: data.clone(),
        };
        bytes.extend(serializer.serialize(&payload, false, false).unwrap().bytes);
        let csid = if type_id == VIDEO { 4 } else { 5 };
        want.push(message(csid, type_id, 1, ts, &data));
    }
    assert_split_invariant(ChunkLimits::default(), &bytes, &want);
}

/// Two messages on csids 4 and 6 interleaved chunk by chunk (legal RTMP,
/// rml_rtmp 0.8 panics): each reassembles on its own.
#[test]
fn interleaved_chunk_streams_reassemble() {
    let video: Vec<u8> = (0..300_u32).map(|i| i as u8).collect();
    let audio: Vec<u8> = (0..200_u32).map(|i| (255 - i) as u8).collect();
    let mut v = Vec::new();
    encode_message(&mut v, 128, 6, VIDEO, 1, 40, &video);
    let mut a = Vec::new();
    encode_message(&mut a, 128, 4, AUDIO, 1, 23, &audio);
    // Split each into its chunks: headers are 12 bytes, then 1.
    let split = |bytes: &[u8], first: usize| {
        let mut chunks = vec![bytes[..first].to_vec()];
        chunks.extend(bytes[first..].chunks(129).map(<[u8]>::to_vec));
        chunks
    };
    let v_chunks = split(&v, 12 + 128);
    let a_chunks = split(&a, 12 + 128);
    assert_eq!((v_chunks.len(), a_chunks.len()), (3, 2));
    let mut input = Vec::new();
    for (i, v_chunk) in v_chunks.iter().enumerate() {
        input.extend_from_slice(v_chunk);
        if let Some(chunk) = a_chunks.get(i) {
            input.extend_from_slice(chunk);
        }
    }
    // Audio completes first (its second chunk comes before video's third).
    let want = vec![message(4, AUDIO, 1, 23, &audio), message(6, VIDEO, 1, 40, &video)];
    assert_split_invariant(ChunkLimits::default(), &input, &want);
}

#[test]
fn set_chunk_size_applies_to_following_chunks() {
    let payload: Vec<u8> = (0..5000_u32).map(|i| (i % 253) as u8).collect();
    let mut input = Vec::new();
    encode_message(&mut input, 128, 2, SET_CHUNK_SIZE, 0, 0, &4096_u32.to_be_bytes());
    encode_message(&mut input, 4096, 4, VIDEO, 1, 0, &payload);
    encode_message(&mut input, 4096, 2, SET_CHUNK_SIZE, 0, 0, &1_u32.to_be_bytes());
    encode_message(&mut input, 1, 4, VIDEO, 1, 0, &payload[..5]);
    let want = vec![
        message(4, VIDEO, 1, 0, &payload),
        message(4, VIDEO, 1, 0, &payload[..5]),
    ];
    assert_split_invariant(ChunkLimits::default(), &input, &want);
    let mut decoder = ChunkDecoder::new(ChunkLimits::default());
    decoder.handle_input(&input, &mut Vec::new()).unwrap();
    assert_eq!(decoder.chunk_size(), 1);
}

#[test]
fn abort_discards_the_partial_message() {
    let mut input = Vec::new();
    // First chunk (128 of 300 bytes) on csid 6, then Abort(6).
    let mut v = Vec::new();
    encode_message(&mut v, 128, 6, VIDEO, 1, 0, &[0xEE; 300]);
    input.extend_from_slice(&v[..12 + 128]);
    encode_message(&mut input, 128, 2, ABORT, 0, 0, &6_u32.to_be_bytes());
    // A type 3 on csid 6 now starts a new message (length 300 again).
    input.push(0xC6);
    input.extend_from_slice(&[0x11; 128]);
    input.push(0xC6);
    input.extend_from_slice(&[0x11; 128]);
    input.push(0xC6);
    input.extend_from_slice(&[0x11; 44]);
    // Abort of an idle or unknown csid is ignored.
    encode_message(&mut input, 128, 2, ABORT, 0, 0, &6_u32.to_be_bytes());
    encode_message(&mut input, 128, 2, ABORT, 0, 0, &999_u32.to_be_bytes());
    let want = vec![message(6, VIDEO, 1, 0, &[0x11; 300])];
    assert_split_invariant(ChunkLimits::default(), &input, &want);
}

#[test]
fn limits_and_protocol_errors() {
    let small = ChunkLimits {
        max_chunk_size: 4096,
        max_message_bytes: 1000,
        max_chunk_streams: 3,
        max_partial_messages: 2,
        max_buffered_bytes: 1500,
    };
    let set_chunk_size = |size: u32| {
        let mut v = Vec::new();
        encode_message(&mut v, 128, 2, SET_CHUNK_SIZE, 0, 0, &size.to_be_bytes());
        v
    };
    // Type 0 headers announcing `len` bytes on csids 3.., each with its
    // first chunk (`first` bytes of payload).
    let starts = |count: u8, len: u32, first: usize| {
        let mut v = Vec::new();
        for csid in 3..3 + count {
            v.push(csid);
            v.extend_from_slice(&[0, 0, 0]);
            v.extend_from_slice(&len.to_be_bytes()[1..]);
            v.extend_from_slice(&[COMMAND_AMF0, 0, 0, 0, 0]);
            v.extend_from_slice(&vec![0; first]);
        }
        v
    };
    let mut shrink = Vec::new();
    let mut long = Vec::new();
    encode_message(&mut long, 128, 4, VIDEO, 1, 0, &[0; 300]);
    shrink.extend_from_slice(&long[..12 + 128]);
    // Type 1 on csid 4 mid-message, length 10 (rml_rtmp 0.8 panics).
    shrink.extend_from_slice(&[0x44, 0, 0, 0, 0, 0, 10, VIDEO]);
    let mut buffered = Vec::new();
    for csid in [3_u8, 4] {
        buffered.extend_from_slice(&[csid, 0, 0, 0, 0, 0x03, 0xE8, VIDEO, 1, 0, 0, 0]);
        buffered.extend_from_slice(&[0; 128]);
    }
    for _ in 0..5 {
        for csid in [3_u8, 4] {
            buffered.push(0xC0 | csid);
            buffered.extend_from_slice(&[0; 128]);
        }
    }
    let cases: Vec<(&str, Vec<u8>, ChunkError)> = vec![
        ("chunk size 0", set_chunk_size(0), ChunkError::InvalidChunkSize(0)),
        (
            "chunk size with the top bit",
            set_chunk_size(0x8000_0000),
            ChunkError::InvalidChunkSize(0x8000_0000),
        ),
        (
            "chunk size 2^31-1 above the limit",
            set_chunk_size(0x7FFF_FFFF),
            ChunkError::ChunkSizeTooLarge {
                size: 0x7FFF_FFFF,
                max: 4096,
            },
        ),
        (
            "short set chunk size",
            vec![0x02, 0, 0, 0, 0, 0, 2, SET_CHUNK_SIZE, 0, 0, 0, 0, 0x10, 0x00],
            ChunkError::ShortControlMessage {
                type_id: SET_CHUNK_SIZE,
                length: 2,
            },
        ),
        (
            "16 MB message",
            vec![0x04, 0, 0, 0, 0xFF, 0xFF, 0xFF, VIDEO, 1, 0, 0, 0],
            ChunkError::MessageTooLarge {
                length: 0xFF_FFFF,
                max: 1000,
            },
        ),
        (
            "type 1 on an unknown csid",
            vec![0x47, 0, 0, 0, 0, 0, 1, VIDEO, 0],
            ChunkError::NoPreviousHeader { csid: 7, fmt: 1 },
        ),
        (
            "type 3 on an unknown csid",
            vec![0xC9, 1, 2, 3],
            ChunkError::NoPreviousHeader { csid: 9, fmt: 3 },
        ),
        (
            "type 1 shrinking the length mid-message",
            shrink,
            ChunkError::HeaderMidMessage {
                csid: 4,
                received: 128,
                length: 300,
            },
        ),
        (
            "too many chunk streams",
            starts(4, 0, 0),
            ChunkError::TooManyChunkStreams(3),
        ),
        (
            "too many partial messages",
            starts(3, 500, 128),
            ChunkError::TooManyPartialMessages(2),
        ),
        ("too much buffered", buffered, ChunkError::TooMuchBuffered(1500)),
    ];
    for (name, input, want) in cases {
        let (_, result) = decode_all(small, &input);
        assert_eq!(result, Err(want), "{name}");
    }
    // At the limits exactly: accepted.
    let mut ok = set_chunk_size(4096);
    encode_message(&mut ok, 4096, 4, VIDEO, 1, 0, &[1; 1000]);
    let (got, result) = decode_all(small, &ok);
    assert_eq!(result, Ok(()));
    assert_eq!(got, vec![message(4, VIDEO, 1, 0, &[1; 1000])]);
}

#[test]
fn set_limits_raises_the_message_cap() {
    let low = ChunkLimits {
        max_message_bytes: 100,
        ..ChunkLimits::default()
    };
    let mut decoder = ChunkDecoder::new(low);
    let mut input = Vec::new();
    encode_message(&mut input, 128, 4, VIDEO, 1, 0, &[7; 500]);
    decoder.set_limits(ChunkLimits::default());
    let mut out = Vec::new();
    decoder.handle_input(&input, &mut out).unwrap();
    assert_eq!(out, vec![message(4, VIDEO, 1, 0, &[7; 500])]);
}

#[test]
fn encoder_golden_bytes() {
    let mut out = Vec::new();
    encode_message(&mut out, 4, 3, COMMAND_AMF0, 1, 0x10, &[1, 2, 3, 4, 5, 6]);
    assert_eq!(
        out,
        [
            0x03, 0x00, 0x00, 0x10, 0x00, 0x00, 0x06, 0x14, 0x01, 0x00, 0x00, 0x00, 1, 2, 3, 4, 0xC3, 5, 6
        ]
    );
    let mut out = Vec::new();
    encode_message(&mut out, 128, 320, AUDIO, 0, 0, &[9]);
    assert_eq!(out, [0x01, 0x00, 0x01, 0, 0, 0, 0, 0, 1, AUDIO, 0, 0, 0, 0, 9]);
}

/// A valid stream of several message shapes, cut at every length: no
/// panic, no error, and only whole messages come out.
#[test]
fn every_prefix_of_a_valid_stream() {
    let mut input = Vec::new();
    encode_message(&mut input, 128, 2, SET_CHUNK_SIZE, 0, 0, &200_u32.to_be_bytes());
    encode_message(&mut input, 200, 3, COMMAND_AMF0, 0, 0, &[0x02; 450]);
    encode_message(&mut input, 200, 70, AUDIO, 1, 0x0100_0000, &[0x0A; 10]);
    encode_message(&mut input, 200, 400, VIDEO, 1, 5, &[0x0B; 401]);
    let valid_len = input.len();
    let (all, result) = decode_all(ChunkLimits::default(), &input[..valid_len]);
    assert_eq!(result, Ok(()));
    assert_eq!(all.len(), 3);
    for len in 0..=valid_len {
        let (got, result) = decode_all(ChunkLimits::default(), &input[..len]);
        assert_eq!(result, Ok(()), "prefix {len}");
        assert!(got.len() <= all.len() && got[..] == all[..got.len()], "prefix {len}");
    }
}

/// Deterministic xorshift garbage, raw and after a valid prefix, in
/// random piece sizes: an error or messages, never a panic; memory stays
/// within the limits.
#[test]
fn random_garbage_never_panics() {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let limits = ChunkLimits {
        max_message_bytes: 64 * 1024,
        max_buffered_bytes: 128 * 1024,
        ..ChunkLimits::default()
    };
    let mut errors = 0;
    for round in 0..2000 {
        let len = (next() % 4096) as usize;
        let mut input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 1 {
            // Bias towards plausible headers: low csids, small lengths.
            for (i, byte) in input.iter_mut().enumerate() {
                if i % 13 == 0 {
                    *byte &= 0xC7;
                }
            }
        }
        let mut decoder = ChunkDecoder::new(limits);
        let mut out = Vec::new();
        let mut rest = &input[..];
        while !rest.is_empty() {
            let n = ((next() % 64) as usize + 1).min(rest.len());
            let (part, tail) = rest.split_at(n);
            rest = tail;
            if decoder.handle_input(part, &mut out).is_err() {
                errors += 1;
                break;
            }
            assert!(decoder.buffered_bytes <= limits.max_buffered_bytes);
            assert!(decoder.streams.len() <= limits.max_chunk_streams);
        }
    }
    assert!(errors > 100, "garbage should mostly be rejected, got {errors} errors");
}
