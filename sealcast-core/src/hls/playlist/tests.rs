use super::*;

/// 2026-11-22T08:00:00.000Z
const T0_MS: i64 = 1_795_334_400_000;

fn key(name: &str, iv_last: u8) -> KeyTag {
    let mut iv = [0u8; 16];
    iv[15] = iv_last;
    KeyTag {
        uri: format!("/keys/live/cam/{name}?edk=RW5jcnlwdGVk"),
        iv,
    }
}

fn seg(uri: &str, duration_secs: f64) -> SegmentEntry {
    SegmentEntry {
        uri: uri.to_owned(),
        duration_secs,
        key: None,
        program_date_time_ms: None,
        discontinuity: false,
        sequence: 0,
    }
}

#[test]
fn sequence_numbers_saturate_instead_of_overflowing() {
    // A playlist restored from a tampered file may start anywhere.
    let mut playlist = MediaPlaylist::live(1, 1, u64::MAX - 1, u64::MAX);
    for i in 0..6 {
        let mut s = seg(&format!("s{i}.ts"), 1.0);
        s.discontinuity = true;
        playlist.push(s);
    }
    assert_eq!(playlist.media_sequence(), u64::MAX);
    assert_eq!(playlist.discontinuity_sequence(), u64::MAX);
    assert_eq!(playlist.next_sequence(), u64::MAX);
}

pub(crate) fn vod_golden() -> (MediaPlaylist, &'static str) {
    let mut k1 = key("k1", 0);
    k1.iv = *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f";
    let k2 = KeyTag {
        uri: "/keys/vod/film/k2?edk=AQID".to_owned(),
        iv: [0xf0; 16],
    };
    let mut p = MediaPlaylist::vod();
    for (uri, d, k) in [("a-0.ts", 8.333, &k1), ("a-1.ts", 8.5, &k1), ("a-2.ts", 2.0004, &k2)] {
        let removed = p.push(SegmentEntry {
            key: Some(k.clone()),
            ..seg(uri, d)
        });
        assert!(removed.is_empty());
    }
    let golden = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:9
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/cam/k1?edk=RW5jcnlwdGVk\",IV=0x000102030405060708090a0b0c0d0e0f
#EXTINF:8.333,
a-0.ts
#EXTINF:8.500,
a-1.ts
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/vod/film/k2?edk=AQID\",IV=0xf0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0
#EXTINF:2.000,
a-2.ts
#EXT-X-ENDLIST
";
    (p, golden)
}

/// Five 4 s segments through a window of three; the key changes at
/// sequence 103, and 100..=102 share k1.
pub(crate) fn live_golden() -> (MediaPlaylist, Vec<SegmentEntry>, &'static str) {
    let mut p = MediaPlaylist::live(4, 3, 100, 0);
    let mut removed = Vec::new();
    for i in 0..5u8 {
        let k = if i < 3 { key("k1", 1) } else { key("k2", 2) };
        removed.extend(p.push(SegmentEntry {
            key: Some(k),
            program_date_time_ms: Some(T0_MS + 4000 * i64::from(i)),
            ..seg(&format!("p1-{}.ts", 100 + u32::from(i)), 4.0)
        }));
    }
    let golden = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:102
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/cam/k1?edk=RW5jcnlwdGVk\",IV=0x00000000000000000000000000000001
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T08:00:08.000Z
#EXTINF:4.000,
p1-102.ts
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/cam/k2?edk=RW5jcnlwdGVk\",IV=0x00000000000000000000000000000002
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T08:00:12.000Z
#EXTINF:4.000,
p1-103.ts
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T08:00:16.000Z
#EXTINF:4.000,
p1-104.ts
";
    (p, removed, golden)
}

#[test]
fn vod_with_three_segments_and_two_keys() {
    let (p, golden) = vod_golden();
    assert_eq!(p.render(None), golden);
    assert_eq!(p.target_duration_secs(), 9); // 8.5 rounds half up
    let seqs: Vec<u64> = p.segments().map(|s| s.sequence).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(p.duration_secs(), 18.833);
}

/// A recording: an event playlist keeps every segment (with its
/// discontinuity) and a fixed TARGETDURATION, then becomes VOD.
#[test]
fn event_playlist_grows_then_becomes_vod() {
    let mut p = MediaPlaylist::event(4);
    for i in 0..5u32 {
        let removed = p.push(SegmentEntry {
            key: Some(key("k1", 1)),
            discontinuity: i == 3,
            ..seg(&format!("../../p-{i}.ts"), 4.0)
        });
        assert!(removed.is_empty());
    }
    let text = p.render(Some("token=t"));
    assert!(text.starts_with(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:EVENT\n"
    ));
    assert_eq!(text.matches("#EXTINF:4.000,").count(), 5);
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1);
    assert_eq!(text.matches("?edk=RW5jcnlwdGVk&token=t").count(), 1);
    assert!(!text.contains("#EXT-X-ENDLIST"));
    let vod = p.into_vod();
    let text = vod.render(None);
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"));
    assert!(text.ends_with("../../p-4.ts\n#EXT-X-ENDLIST\n"));
    assert_eq!(vod.duration_secs(), 20.0);
}

#[test]
fn live_window_slides_past_a_key_change_and_keeps_the_key_tag() {
    let (p, removed, golden) = live_golden();
    assert_eq!(p.render(None), golden);
    let removed: Vec<(u64, &str)> = removed.iter().map(|s| (s.sequence, s.uri.as_str())).collect();
    assert_eq!(removed, [(100, "p1-100.ts"), (101, "p1-101.ts")]);
    assert_eq!(p.media_sequence(), 102);
    assert_eq!(p.next_sequence(), 105);
    assert_eq!(p.len(), 3);
    assert_eq!(p.target_overruns(), 0);
}

fn push_numbered(p: &mut MediaPlaylist, i: u32, discontinuity: bool) -> usize {
    p.push(SegmentEntry {
        discontinuity,
        ..seg(&format!("s{i}.ts"), 2.0)
    })
    .len()
}

#[test]
fn discontinuity_sequence_counts_removed_discontinuities() {
    let mut p = MediaPlaylist::live(2, 3, 0, 0);
    assert_eq!(push_numbered(&mut p, 0, false), 0);
    assert_eq!(push_numbered(&mut p, 1, true), 0);
    assert_eq!(push_numbered(&mut p, 2, false), 0);
    let before = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXTINF:2.000,
s0.ts
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
s1.ts
#EXTINF:2.000,
s2.ts
";
    assert_eq!(p.render(None), before);

    assert_eq!(push_numbered(&mut p, 3, true), 1); // s0 out: no discontinuity removed
    assert_eq!(push_numbered(&mut p, 4, false), 1); // s1 out: DISCONTINUITY-SEQUENCE 1
    let after = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:2
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXTINF:2.000,
s2.ts
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
s3.ts
#EXTINF:2.000,
s4.ts
";
    assert_eq!(p.render(None), after);
    assert_eq!(p.discontinuity_sequence(), 1);

    // s2 out: the first listed segment is the flagged s3, tag kept.
    p.push(seg("s5.ts", 2.0));
    let first_flagged = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:3
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
s3.ts
#EXTINF:2.000,
s4.ts
#EXTINF:2.000,
s5.ts
";
    assert_eq!(p.render(None), first_flagged);
    p.push(seg("s6.ts", 2.0));
    assert_eq!((p.media_sequence(), p.discontinuity_sequence()), (4, 2));
}

#[test]
fn restart_continues_both_sequences() {
    let mut p = MediaPlaylist::live(6, 5, 1000, 7);
    p.push(SegmentEntry {
        discontinuity: true,
        ..seg("p2-0.ts", 6.0)
    });
    let golden = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:6
#EXT-X-MEDIA-SEQUENCE:1000
#EXT-X-DISCONTINUITY-SEQUENCE:7
#EXT-X-DISCONTINUITY
#EXTINF:6.000,
p2-0.ts
";
    assert_eq!(p.render(None), golden);
    assert_eq!(p.segments().next().map(|s| s.sequence), Some(1000));
}

#[test]
fn live_keeps_three_target_durations_listed() {
    // Window 3 with 3 s segments and a 4 s target: three segments make
    // 9 s < 12 s, so a fourth stays listed (RFC 8216 6.2.2).
    let mut p = MediaPlaylist::live(4, 3, 0, 0);
    let removed: Vec<usize> = (0..8).map(|i| p.push(seg(&format!("s{i}.ts"), 3.0)).len()).collect();
    assert_eq!(removed, [0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(p.len(), 4);
    assert_eq!(p.media_sequence(), 4);
    assert_eq!(p.duration_secs(), 12.0);
}

#[test]
fn key_query_is_appended_with_the_right_separator() {
    let cases: &[(&str, Option<&str>, &str)] = &[
        (
            "/keys/a/b/k1?edk=eHl6",
            Some("token=abc"),
            "/keys/a/b/k1?edk=eHl6&token=abc",
        ),
        (
            "https://k.example/k1",
            Some("token=abc"),
            "https://k.example/k1?token=abc",
        ),
        ("/k1?", Some("token=abc"), "/k1?token=abc"),
        ("/k1?a=1&", Some("token=abc"), "/k1?a=1&token=abc"),
        ("/k1?edk=x", Some("?token=abc"), "/k1?edk=x&token=abc"),
        ("/k1?edk=x", Some("&token=abc"), "/k1?edk=x&token=abc"),
        ("/k1?edk=x", Some(""), "/k1?edk=x"),
        ("/k1?edk=x", None, "/k1?edk=x"),
        ("/k1#frag", Some("t=1"), "/k1?t=1#frag"),
        // A token is peer input: it can never break the quoted string or the line.
        ("/k1", Some("token=a\"b\r\nc d#e"), "/k1?token=a%22b%0D%0Ac%20d%23e"),
        ("/k1", Some("t=\u{e9}"), "/k1?t=%C3%A9"),
    ];
    for &(uri, query, want) in cases {
        let mut p = MediaPlaylist::live(4, 3, 0, 0);
        p.push(SegmentEntry {
            key: Some(KeyTag {
                uri: uri.to_owned(),
                iv: [0xab; 16],
            }),
            ..seg("s.ts", 4.0)
        });
        let text = p.render(query);
        let expected = format!("#EXT-X-KEY:METHOD=AES-128,URI=\"{want}\",IV=0xabababababababababababababababab\n");
        assert!(text.contains(&expected), "{uri} {query:?}:\n{text}");
        assert_eq!(text.lines().count(), 7, "{text}");
    }
}

#[test]
fn token_golden() {
    let (p, _, golden) = live_golden();
    let with_token = golden.replace("RW5jcnlwdGVk\"", "RW5jcnlwdGVk&token=eyJ.x-y_z\"");
    assert_ne!(with_token, golden);
    assert_eq!(p.render(Some("token=eyJ.x-y_z")), with_token);
    // render_into appends to a reused buffer.
    let mut buf = String::from("x");
    p.render_into(&mut buf, None);
    assert_eq!(buf, format!("x{golden}"));
}

#[test]
fn endlist_in_live_freezes_the_playlist() {
    let mut p = MediaPlaylist::live(4, 3, 9, 0);
    p.push(seg("s9.ts", 3.5));
    p.end();
    assert!(p.is_ended());
    let golden = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:9
#EXTINF:3.500,
s9.ts
#EXT-X-ENDLIST
";
    assert_eq!(p.render(None), golden);
    let back = p.push(seg("s10.ts", 4.0));
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].uri, "s10.ts");
    assert_eq!(p.render(None), golden);
}

#[test]
fn clear_segment_after_encrypted_one_gets_method_none() {
    let mut p = MediaPlaylist::vod();
    p.push(seg("c0.ts", 1.0));
    p.push(SegmentEntry {
        key: Some(key("k1", 1)),
        ..seg("e1.ts", 1.0)
    });
    p.push(seg("c2.ts", 1.0));
    let golden = "\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:1
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:1.000,
c0.ts
#EXT-X-KEY:METHOD=AES-128,URI=\"/keys/live/cam/k1?edk=RW5jcnlwdGVk\",IV=0x00000000000000000000000000000001
#EXTINF:1.000,
e1.ts
#EXT-X-KEY:METHOD=NONE
#EXTINF:1.000,
c2.ts
#EXT-X-ENDLIST
";
    assert_eq!(p.render(None), golden);
}

#[test]
fn target_duration_rounding() {
    // (EXTINF seconds, rounded as RFC 8216 4.3.3.1 compares it)
    let cases: &[(f64, u32)] = &[
        (0.0, 1),
        (0.4, 1),
        (1.4995, 2), // written as 1.500
        (1.4994, 1), // written as 1.499
        (4.5, 5),
        (4.499, 4),
        (8.333, 8),
    ];
    for &(d, want) in cases {
        let mut vod = MediaPlaylist::vod();
        vod.push(seg("s.ts", d));
        assert_eq!(vod.target_duration_secs(), want, "{d}");
        let mut live = MediaPlaylist::live(4, 3, 0, 0);
        live.push(seg("s.ts", d));
        assert_eq!(live.target_duration_secs(), 4);
        assert_eq!(live.target_overruns(), u64::from(want > 4), "{d}");
    }
    assert_eq!(MediaPlaylist::vod().target_duration_secs(), 1);
    assert_eq!(MediaPlaylist::live(0, 0, 0, 0).target_duration_secs(), 1);
}

#[test]
fn uri_escaping() {
    let cases: &[(&str, &str)] = &[
        ("p1-0.ts", "p1-0.ts"),
        ("a b.ts", "a%20b.ts"),
        ("a\"b\nc.ts", "a%22b%0Ac.ts"),
        ("caf\u{e9}.ts", "caf%C3%A9.ts"),
        ("x%20y.ts", "x%20y.ts"),
        ("a#b#c", "a#b%23c"),
    ];
    for &(uri, want) in cases {
        let mut out = String::new();
        write_uri(&mut out, uri, None);
        assert_eq!(out, want);
    }
}
