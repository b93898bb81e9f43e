#!/usr/bin/env bash
# Regenerates the committed seed corpus in fuzz/seeds/<target>/ (small files,
# a few KB each). Needs ffmpeg (libx264, aac) and python3. The seeds only get
# the fuzzer past the first walls (a valid FLV header, AVC/AAC configs, an
# RTMP publish); scripts/fuzz.sh copies them into fuzz/corpus/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ff() { nice ffmpeg -hide_banner -loglevel error -y "$@"; }
# Video with B-frames (negative/positive composition times) and audio, 10 fps, GOP 5.
ff -f lavfi -i testsrc=size=64x48:rate=10 -f lavfi -i sine=frequency=440:sample_rate=8000 -t 1.5 \
   -pix_fmt yuv420p -c:v libx264 -preset ultrafast -profile:v high \
   -x264-params keyint=5:min-keyint=5:scenecut=0:bframes=2 -c:a aac -b:a 16k -ac 1 -f flv "$tmp/av.flv"
ff -f lavfi -i sine=frequency=440:sample_rate=8000 -t 0.5 -c:a aac -b:a 16k -ac 1 -f flv "$tmp/audio.flv"
ff -f lavfi -i testsrc=size=32x32:rate=10 -t 1.2 -pix_fmt yuv420p -c:v libx264 -preset ultrafast \
   -profile:v baseline -g 4 -an -f flv "$tmp/video.flv"

python3 - "$tmp" <<'EOF'
import base64, hashlib, hmac, json, os, struct, sys

tmp = sys.argv[1]

def write(target, name, data):
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, name), "wb") as f:
        f.write(data)

def flv_tags(data):
    """(tag type, timestamp ms, body) of an FLV file."""
    header_len = struct.unpack(">I", data[5:9])[0]
    pos = header_len + 4
    while pos + 11 <= len(data):
        kind = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1:pos + 4], "big")
        ts = int.from_bytes(data[pos + 4:pos + 7], "big") | (data[pos + 7] << 24)
        yield kind, ts, data[pos + 11:pos + 11 + size]
        pos += 11 + size + 4

def records(tags, ts_map=lambda ts: ts):
    """The record form of fuzz/src/lib.rs: kind u8 (mod 3: audio, video, script),
    timestamp u32 BE, len u16 BE, body."""
    out = b""
    for kind, ts, body in tags:
        k = {8: 0, 9: 1, 18: 2}[kind]
        out += bytes([k]) + struct.pack(">IH", ts_map(ts) & 0xFFFFFFFF, len(body)) + body
    return out

# --- flv_demux, flv_pipeline ---
flv_seeds = {}
for name in ["av", "audio", "video"]:
    data = open(os.path.join(tmp, name + ".flv"), "rb").read()
    tags = list(flv_tags(data))
    flv_seeds[name + ".flv"] = data
    flv_seeds[name + ".rec"] = records(tags)
    if name == "av":
        # Timestamps just before the 32-bit wrap, and a backward jump.
        flv_seeds["av-wrap.rec"] = records(tags, lambda ts: ts + 0xFFFFFC00)
        flv_seeds["av-jump.rec"] = records(tags[:20]) + records(tags[5:], lambda ts: ts + 5000)
for name, data in flv_seeds.items():
    write("flv_demux", name, data)
    # Config byte: target 2 s, 1 segment per key, bounded cuts.
    write("flv_pipeline", name, b"\x01" + data)
# Target 1 s, 2 segments per key, keyframes only, discontinuity at start.
write("flv_pipeline", "av.rec-alt", b"\x1c" + flv_seeds["av.rec"])

# --- rtmp_chunks: byte 0 flags (bit 0: canned prologue), byte 1 piece size ---
def amf_string(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b

def amf_number(n):
    return b"\x00" + struct.pack(">d", n)

def amf_object(props):
    out = b"\x03"
    for k, v in props:
        kb = k.encode()
        out += struct.pack(">H", len(kb)) + kb + v
    return out + b"\x00\x00\x09"

def chunks(csid, type_id, stream_id, ts, payload, chunk_size=128):
    """One message as a type-0 chunk and type-3 continuations."""
    out = bytes([csid]) + ts.to_bytes(3, "big") + len(payload).to_bytes(3, "big")
    out += bytes([type_id]) + struct.pack("<I", stream_id)
    first, rest = payload[:chunk_size], payload[chunk_size:]
    out += first
    while rest:
        out += bytes([0xC0 | csid]) + rest[:chunk_size]
        rest = rest[chunk_size:]
    return out

def command(name, tid, *args):
    return amf_string(name) + amf_number(tid) + b"".join(args)

connect = command("connect", 1, amf_object([("app", amf_string("live")),
                                            ("tcUrl", amf_string("rtmp://127.0.0.1/live"))]))
publish_cmds = (
    chunks(3, 20, 0, 0, connect)
    + chunks(3, 20, 0, 0, command("releaseStream", 2, b"\x05", amf_string("sk")))
    + chunks(3, 20, 0, 0, command("FCPublish", 3, b"\x05", amf_string("sk")))
    + chunks(3, 20, 0, 0, command("createStream", 4, b"\x05"))
    + chunks(8, 20, 1, 0, command("publish", 5, b"\x05", amf_string("sk"), amf_string("live")))
)
set_chunk_size = chunks(2, 1, 0, 0, struct.pack(">I", 4096))
metadata = chunks(4, 18, 1, 0, amf_string("@setDataFrame") + amf_string("onMetaData")
                  + amf_object([("width", amf_number(64)), ("height", amf_number(48))]))
av = list(flv_tags(open(os.path.join(tmp, "av.flv"), "rb").read()))
media = b""
for kind, ts, body in av[:24]:
    if kind in (8, 9):
        media += chunks(6 if kind == 9 else 4, kind, 1, ts, body)
write("rtmp_chunks", "publish", b"\x00\x01" + publish_cmds)
write("rtmp_chunks", "publish-media", b"\x00\x00" + publish_cmds + metadata + media)
write("rtmp_chunks", "publish-media-bytewise", b"\x00\x01" + publish_cmds + metadata + media)
write("rtmp_chunks", "prologue-media", b"\x01\x00" + metadata + media)
big = b""
for kind, ts, body in av[:24]:
    if kind in (8, 9):
        big += chunks(6 if kind == 9 else 4, kind, 1, ts, body, 4096)
write("rtmp_chunks", "prologue-chunk-size", b"\x01\x07" + set_chunk_size + big)
# The three rml_rtmp 0.8 panics of issue 4 (the session catches them today).
write("rtmp_chunks", "bare-setdataframe", b"\x00\x00" + chunks(3, 18, 0, 0, amf_string("@setDataFrame")))
a, b = bytes([0x27, 0x01]) + bytes(298), bytes([0xAF, 0x01]) + bytes(298)
ca, cb = chunks(6, 9, 1, 40, a), chunks(4, 8, 1, 40, b)
# Split each message's chunks: type-0 (12-byte header + 128), then type-3 (1 + 128).
def split(c):
    return [c[:140], c[140:269], c[269:]]
interleaved = b"".join(x + y for x, y in zip(split(ca), split(cb)))
write("rtmp_chunks", "interleaved", b"\x01\x00" + interleaved)
shrink = ca[:140] + bytes([0x40 | 6]) + (0).to_bytes(3, "big") + (10).to_bytes(3, "big") + b"\x09" + bytes(10)
write("rtmp_chunks", "type1-shrink", b"\x01\x00" + shrink)

# --- hls_playlist_parse ---
live = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:102
#EXT-X-DISCONTINUITY-SEQUENCE:3
#EXT-X-KEY:METHOD=AES-128,URI="/keys/live/cam/k1?edk=RW5jcnlwdGVk",IV=0x00000000000000000000000000000001
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T08:00:08.000Z
#EXTINF:4.000,
p1-102.ts
#EXT-X-DISCONTINUITY
#EXT-X-KEY:METHOD=AES-128,URI="/keys/live/cam/k2?edk=RW5jcnlwdGVk",IV=0x00000000000000000000000000000002
#EXT-X-PROGRAM-DATE-TIME:2026-11-22T08:00:12.000Z
#EXTINF:4.000,
p2-0.ts
#EXT-X-KEY:METHOD=NONE
#EXTINF:3.5,title
p2-1.ts
#EXT-X-ENDLIST
"""
vod = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:9
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-KEY:METHOD=AES-128,URI="https://h/keys/vod/film/k1?edk=AQID#f",KEYFORMAT="identity"
#EXTINF:8.333,
a-0.ts?x=1
#EXTINF:8.500,
https://cdn/a 1.ts
#EXT-X-ENDLIST
"""
write("hls_playlist_parse", "live.m3u8", live.encode())
write("hls_playlist_parse", "vod.m3u8", vod.replace("\n", "\r\n").encode())

# --- token_verify ---
secret = b"sealcast-fuzz-secret-0123456789abcdef"
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")
def token(header, payload):
    signing = b64(header) + b"." + b64(payload)
    return signing + b"." + b64(hmac.new(secret, signing, hashlib.sha256).digest())
header = b'{"alg":"HS256","typ":"JWT"}'
claims = json.dumps({"exp": 1800000000, "stream": "live/*", "sub": "viewer", "jti": "t-1"}).encode()
write("token_verify", "token", token(header, claims))
write("token_verify", "bearer", b"Bearer " + token(header, claims))
write("token_verify", "json", header + b"\n" + claims)
write("token_verify", "json-crit", b'{"alg":"HS256","crit":["b64"]}\n{"exp":1800000000,"stream":"live/demo"}')
write("token_verify", "key-uri", b"https://h/keys/live/demo/k1?token=x&edk=" + b64(bytes(range(49))))
write("token_verify", "edk", b64(bytes(range(49))))
# --- license_request ---
# The worked example's player key (docs/protection.md), raw and as a JWK.
point = bytes.fromhex("04d65a93977caa3d1b081852ff57a79e465f1660577304baead505dd3a48589cf350185e895372df6221ea3a137557e473fddb6755f05bd507c3c533fce9c91285")
keys = [{"key_id": "k1", "edk": b64(bytes(range(49))).decode()}, {"key_id": "k2", "edk": "AAAA"}]
write("license_request", "raw", json.dumps({"public_key": b64(point).decode(), "keys": keys}).encode())
jwk = {"kty": "EC", "crv": "P-256", "x": b64(point[1:33]).decode(), "y": b64(point[33:]).decode(), "ext": True}
write("license_request", "jwk", json.dumps({"public_key": jwk, "keys": keys[:1]}).encode())
write("license_request", "offline", json.dumps({"public_key": b64(point).decode(), "keys": keys, "offline": True}).encode())
EOF
