//! Just enough AMF0 (Adobe AMF0 specification, 2.1) to read onMetaData from
//! FLV script data tags and RTMP data messages.

use super::Error;

/// AMF0 type markers (AMF0 spec 2.1).
mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
}

/// Deeper nesting than this is treated as malformed (bounds recursion).
const MAX_DEPTH: u32 = 16;

/// The onMetaData properties sealcast uses (FLV v10.1 E.5), where present
/// with the expected AMF0 type; other properties are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub framerate: Option<f64>,
    /// `videodatarate`, kbit/s.
    pub video_data_rate_kbps: Option<f64>,
    /// `audiodatarate`, kbit/s.
    pub audio_data_rate_kbps: Option<f64>,
    /// `audiosamplerate`, Hz.
    pub audio_sample_rate: Option<f64>,
    pub encoder: Option<String>,
    /// `videocodecid` when numeric (7 = AVC); FourCC strings are ignored.
    pub video_codec_id: Option<f64>,
    /// `audiocodecid` when numeric (10 = AAC).
    pub audio_codec_id: Option<f64>,
}

impl Metadata {
    fn set(&mut self, name: &[u8], value: Value<'_>) {
        let number = match value {
            Value::Number(n) => Some(n),
            _ => None,
        };
        match name {
            b"width" => self.width = number.or(self.width),
            b"height" => self.height = number.or(self.height),
            b"framerate" => self.framerate = number.or(self.framerate),
            b"videodatarate" => self.video_data_rate_kbps = number.or(self.video_data_rate_kbps),
            b"audiodatarate" => self.audio_data_rate_kbps = number.or(self.audio_data_rate_kbps),
            b"audiosamplerate" => self.audio_sample_rate = number.or(self.audio_sample_rate),
            b"videocodecid" => self.video_codec_id = number.or(self.video_codec_id),
            b"audiocodecid" => self.audio_codec_id = number.or(self.audio_codec_id),
            b"encoder" => {
                if let Value::String(s) = value {
                    self.encoder = Some(String::from_utf8_lossy(s).into_owned());
                }
            }
            _ => {}
        }
    }
}

/// A property value as far as metadata cares.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value<'a> {
    Number(f64),
    String(&'a [u8]),
    /// Any other type, skipped.
    Other,
    /// A type whose length cannot be known (movieclip, recordset, AVM+
    /// switch, undefined markers): parsing stops here.
    Opaque,
}

struct Reader<'a> {
    buf: &'a [u8],
}

const TRUNCATED: Error = Error::BadAmf("truncated");

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let Some(head) = self.buf.get(..n) else {
            return Err(TRUNCATED);
        };
        self.buf = &self.buf[n..];
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f64(&mut self) -> Result<f64, Error> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    /// UTF-8 (AMF0 2.3, without marker): u16 length then bytes.
    fn short_string(&mut self) -> Result<&'a [u8], Error> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    fn long_string(&mut self) -> Result<&'a [u8], Error> {
        let len = self.u32()?;
        self.take(usize::try_from(len).map_err(|_| TRUNCATED)?)
    }

    /// One value with its marker. Containers are skipped whole.
    fn value(&mut self, depth: u32) -> Result<Value<'a>, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::BadAmf("nested too deeply"));
        }
        let value = match self.u8()? {
            marker::NUMBER => Value::Number(self.f64()?),
            marker::BOOLEAN => {
                self.take(1)?;
                Value::Other
            }
            marker::STRING => Value::String(self.short_string()?),
            marker::LONG_STRING => Value::String(self.long_string()?),
            marker::NULL | marker::UNDEFINED | marker::UNSUPPORTED => Value::Other,
            marker::REFERENCE => {
                self.take(2)?;
                Value::Other
            }
            marker::DATE => {
                self.take(8 + 2)?; // f64 ms + s16 time zone
                Value::Other
            }
            marker::XML_DOCUMENT => {
                self.long_string()?;
                Value::Other
            }
            marker::OBJECT => return self.skip_properties(depth + 1),
            marker::TYPED_OBJECT => {
                self.short_string()?; // class name
                return self.skip_properties(depth + 1);
            }
            marker::ECMA_ARRAY => {
                self.u32()?; // associative count: a hint only, the end marker ends it
                return self.skip_properties(depth + 1);
            }
            marker::STRICT_ARRAY => {
                // Each value takes at least one byte, so a bogus count ends in
                // "truncated" after at most buf.len() iterations.
                let count = self.u32()?;
                for _ in 0..count {
                    if self.value(depth + 1)? == Value::Opaque {
                        return Ok(Value::Opaque);
                    }
                }
                Value::Other
            }
            _ => Value::Opaque,
        };
        Ok(value)
    }

    fn skip_properties(&mut self, depth: u32) -> Result<Value<'a>, Error> {
        let mut opaque = false;
        self.properties(depth, |_, v| opaque |= v == Value::Opaque)?;
        Ok(if opaque { Value::Opaque } else { Value::Other })
    }

    /// Reads name/value pairs (AMF0 2.5 object-property) up to the object
    /// end marker (an empty name then 0x09) or the end of the input, which
    /// some encoders write instead of the end marker (ffmpeg accepts it
    /// too). Calls `f` for each; stops without error after an opaque value.
    fn properties(&mut self, depth: u32, mut f: impl FnMut(&'a [u8], Value<'a>)) -> Result<(), Error> {
        while !self.buf.is_empty() {
            let name = self.short_string()?;
            if name.is_empty() && self.buf.first() == Some(&marker::OBJECT_END) {
                self.buf = &self.buf[1..];
                return Ok(());
            }
            let value = self.value(depth)?;
            f(name, value);
            if value == Value::Opaque {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Reads an onMetaData script body: the string "onMetaData" (optionally after
/// the string "@setDataFrame", as RTMP publishers send it) followed by an
/// ECMA array or object of properties.
///
/// Returns `Ok(false)` for other script data (onCuePoint, |RtmpSampleAccess,
/// ...), `Ok(true)` with `out` filled for onMetaData. `Err((true, e))` means
/// onMetaData was recognized but the properties are malformed; `out` then
/// holds the properties read before the problem. Values of types that cannot
/// be skipped end the parse early without error.
pub(crate) fn parse_on_metadata(body: &[u8], out: &mut Metadata) -> Result<bool, (bool, Error)> {
    let mut r = Reader { buf: body };
    let not_found = |e| (false, e);
    let mut name = match r.value(0).map_err(not_found)? {
        Value::String(s) => s,
        _ => {
            return Err((false, Error::BadAmf("script data does not start with a name")));
        }
    };
    if name == b"@setDataFrame" {
        name = match r.value(0).map_err(not_found)? {
            Value::String(s) => s,
            _ => return Err((false, Error::BadAmf("@setDataFrame without a name"))),
        };
    }
    if name != b"onMetaData" {
        return Ok(false);
    }
    let found = |e| (true, e);
    match r.u8().map_err(found)? {
        marker::ECMA_ARRAY => {
            r.u32().map_err(found)?;
        }
        marker::OBJECT => {}
        _ => {
            return Err((true, Error::BadAmf("onMetaData value is not an object or ECMA array")));
        }
    }
    r.properties(1, |name, value| out.set(name, value)).map_err(found)?;
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds AMF0 bytes for tests.
    #[derive(Default)]
    pub(crate) struct Amf(pub(crate) Vec<u8>);

    impl Amf {
        pub(crate) fn string(mut self, s: &str) -> Self {
            self.0.push(marker::STRING);
            self.name(s)
        }
        /// A property name (no marker).
        pub(crate) fn name(mut self, s: &str) -> Self {
            self.0.extend_from_slice(&(s.len() as u16).to_be_bytes());
            self.0.extend_from_slice(s.as_bytes());
            self
        }
        pub(crate) fn number(mut self, n: f64) -> Self {
            self.0.push(marker::NUMBER);
            self.0.extend_from_slice(&n.to_be_bytes());
            self
        }
        pub(crate) fn boolean(mut self, b: bool) -> Self {
            self.0.extend_from_slice(&[marker::BOOLEAN, b as u8]);
            self
        }
        pub(crate) fn ecma_array(mut self, count: u32) -> Self {
            self.0.push(marker::ECMA_ARRAY);
            self.0.extend_from_slice(&count.to_be_bytes());
            self
        }
        pub(crate) fn object(mut self) -> Self {
            self.0.push(marker::OBJECT);
            self
        }
        pub(crate) fn end(mut self) -> Self {
            self.0.extend_from_slice(&[0, 0, marker::OBJECT_END]);
            self
        }
        pub(crate) fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
    }

    /// An onMetaData ECMA array as ffmpeg writes it, plus skippable extras.
    pub(crate) fn on_metadata(prefix: Amf) -> Vec<u8> {
        prefix
            .string("onMetaData")
            .ecma_array(13)
            .name("duration")
            .number(10.0)
            .name("width")
            .number(640.0)
            .name("height")
            .number(360.0)
            .name("videodatarate")
            .number(683.59375)
            .name("framerate")
            .number(30.0)
            .name("videocodecid")
            .number(7.0)
            .name("keyframes")
            .object()
            .name("times")
            .raw(&[marker::STRICT_ARRAY, 0, 0, 0, 2])
            .number(0.0)
            .number(2.0)
            .name("when")
            .raw(&[marker::DATE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .name("nothing")
            .raw(&[marker::NULL])
            .end()
            .name("audiodatarate")
            .number(93.75)
            .name("audiosamplerate")
            .number(48000.0)
            .name("stereo")
            .boolean(true)
            .name("audiocodecid")
            .number(10.0)
            .name("encoder")
            .string("Lavf59.37.100")
            .name("filesize")
            .number(1008287.0)
            .end()
            .0
    }

    pub(crate) fn full_metadata() -> Metadata {
        Metadata {
            width: Some(640.0),
            height: Some(360.0),
            framerate: Some(30.0),
            video_data_rate_kbps: Some(683.59375),
            audio_data_rate_kbps: Some(93.75),
            audio_sample_rate: Some(48000.0),
            encoder: Some("Lavf59.37.100".into()),
            video_codec_id: Some(7.0),
            audio_codec_id: Some(10.0),
        }
    }

    #[test]
    fn parses_on_metadata() {
        let with_prefix = on_metadata(Amf::default().string("@setDataFrame"));
        for (name, body) in [("plain", on_metadata(Amf::default())), ("@setDataFrame", with_prefix)] {
            let mut md = Metadata::default();
            assert_eq!(parse_on_metadata(&body, &mut md), Ok(true), "{name}");
            assert_eq!(md, full_metadata(), "{name}");
        }
    }

    #[test]
    fn object_form_missing_end_and_odd_types() {
        let cases: &[(&str, Vec<u8>, Metadata)] = &[
            (
                "object instead of ECMA array",
                Amf::default()
                    .string("onMetaData")
                    .object()
                    .name("width")
                    .number(1280.0)
                    .end()
                    .0,
                Metadata {
                    width: Some(1280.0),
                    ..Metadata::default()
                },
            ),
            (
                "no end marker, wrong count",
                Amf::default()
                    .string("onMetaData")
                    .ecma_array(0)
                    .name("height")
                    .number(720.0)
                    .0,
                Metadata {
                    height: Some(720.0),
                    ..Metadata::default()
                },
            ),
            (
                "FourCC codec id and numeric encoder ignored",
                Amf::default()
                    .string("onMetaData")
                    .ecma_array(2)
                    .name("videocodecid")
                    .string("avc1")
                    .name("encoder")
                    .number(3.0)
                    .name("width")
                    .boolean(true)
                    .end()
                    .0,
                Metadata::default(),
            ),
            (
                "opaque type stops parsing gracefully",
                Amf::default()
                    .string("onMetaData")
                    .ecma_array(2)
                    .name("width")
                    .number(320.0)
                    .name("clip")
                    .raw(&[0x04, 0xAA, 0xBB])
                    .name("height")
                    .number(180.0)
                    .end()
                    .0,
                Metadata {
                    width: Some(320.0),
                    ..Metadata::default()
                },
            ),
        ];
        for (name, body, want) in cases {
            let mut md = Metadata::default();
            assert_eq!(parse_on_metadata(body, &mut md), Ok(true), "{name}");
            assert_eq!(&md, want, "{name}");
        }
    }

    #[test]
    fn ignores_other_script_data() {
        for body in [
            Amf::default().string("onCuePoint").object().end().0,
            Amf::default().string("|RtmpSampleAccess").boolean(false).0,
            Amf::default().string("@setDataFrame").string("onTextData").0,
        ] {
            let mut md = Metadata::default();
            assert_eq!(parse_on_metadata(&body, &mut md), Ok(false));
        }
    }

    #[test]
    fn rejects_malformed() {
        let cases: &[(&str, Vec<u8>, bool)] = &[
            ("number first", Amf::default().number(1.0).0, false),
            ("truncated name", vec![marker::STRING, 0, 10, b'o', b'n'], false),
            ("not an object", Amf::default().string("onMetaData").number(1.0).0, true),
            ("nothing after name", Amf::default().string("onMetaData").0, true),
            (
                "deep nesting",
                Amf::default()
                    .string("onMetaData")
                    .object()
                    .name("a")
                    .raw(&[marker::OBJECT, 0, 1, b'a'].repeat(40))
                    .0,
                true,
            ),
        ];
        for (name, body, found) in cases {
            let mut md = Metadata::default();
            let got = parse_on_metadata(body, &mut md);
            assert!(
                matches!(got, Err((f, Error::BadAmf(_))) if f == *found),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn truncated_keeps_properties_read_so_far() {
        let body = on_metadata(Amf::default());
        // Cut inside "videodatarate"'s number: width and height are complete.
        let cut = body.windows(13).position(|w| w == b"videodatarate").unwrap() + 13 + 4;
        let mut md = Metadata::default();
        assert_eq!(
            parse_on_metadata(&body[..cut], &mut md),
            Err((true, Error::BadAmf("truncated")))
        );
        assert_eq!(
            md,
            Metadata {
                width: Some(640.0),
                height: Some(360.0),
                ..Metadata::default()
            }
        );
        // No prefix panics; each either succeeds or reports an error.
        for len in 0..body.len() {
            let mut md = Metadata::default();
            let _ = parse_on_metadata(&body[..len], &mut md);
        }
    }
}
