//! onMetaData from FLV script data tags and RTMP data messages (FLV spec
//! v10.1 E.5), read with the crate's AMF0 reader.

use super::Error;
use crate::amf0::{Amf0Error, Reader, Value};

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
    /// Reads an onMetaData script body (an FLV script tag's, or an RTMP data
    /// message's with or without `@setDataFrame`). `Ok(None)` for other
    /// script data; properties read before a malformed one are kept only on
    /// success, so a broken message changes nothing.
    pub fn parse(body: &[u8]) -> Result<Option<Metadata>, Error> {
        let mut metadata = Metadata::default();
        match parse_on_metadata(body, &mut metadata) {
            Ok(true) => Ok(Some(metadata)),
            Ok(false) | Err((false, _)) => Ok(None),
            Err((true, error)) => Err(error),
        }
    }

    fn set(&mut self, name: &[u8], value: Value<'_>) {
        let number = value.as_number();
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

/// A value AMF0 gives no length for (movie clip, record set, AMF3 switch,
/// an undefined marker or a stray object end): nothing after it can be read.
fn is_opaque(e: Amf0Error) -> bool {
    matches!(e, Amf0Error::Unsupported(_) | Amf0Error::UnexpectedObjectEnd)
}

fn bad_amf(e: Amf0Error) -> Error {
    Error::BadAmf(match e {
        Amf0Error::Truncated => "truncated",
        Amf0Error::TooDeep => "nested too deeply",
        Amf0Error::Unsupported(_) | Amf0Error::UnexpectedObjectEnd => "value of unknown length",
        Amf0Error::NoCommandName => "no name",
    })
}

/// The next value as a name; `not_a_name` is the error for other types.
fn read_name<'a>(reader: &mut Reader<'a>, not_a_name: &'static str) -> Result<&'a [u8], Error> {
    match reader.read() {
        Ok(Value::String(s)) => Ok(s),
        Ok(_) => Err(Error::BadAmf(not_a_name)),
        Err(e) if is_opaque(e) => Err(Error::BadAmf(not_a_name)),
        Err(e) => Err(bad_amf(e)),
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
/// be skipped end the parse early without error. The properties object may
/// end with the input instead of its end marker, as some encoders write it
/// (ffmpeg accepts it too).
pub(crate) fn parse_on_metadata(body: &[u8], out: &mut Metadata) -> Result<bool, (bool, Error)> {
    let mut reader = Reader::new(body);
    let not_found = |e| (false, e);
    let mut name = read_name(&mut reader, "script data does not start with a name").map_err(not_found)?;
    if name == b"@setDataFrame" {
        name = read_name(&mut reader, "@setDataFrame without a name").map_err(not_found)?;
    }
    if name != b"onMetaData" {
        return Ok(false);
    }
    let found = |e| (true, e);
    let properties = reader
        .read_properties_lazily()
        .map_err(|e| found(bad_amf(e)))?
        .ok_or(found(Error::BadAmf("onMetaData value is not an object or ECMA array")))?;
    for property in properties {
        match property {
            Ok((name, value)) => out.set(name, value),
            Err(e) if is_opaque(e) => break,
            Err(e) => return Err(found(bad_amf(e))),
        }
    }
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::amf0::{marker, write};

    /// Builds AMF0 bytes for tests.
    #[derive(Default)]
    pub(crate) struct Amf(pub(crate) Vec<u8>);

    impl Amf {
        pub(crate) fn string(mut self, s: &str) -> Self {
            write::string(&mut self.0, s);
            self
        }
        /// A property name (no marker).
        pub(crate) fn name(mut self, s: &str) -> Self {
            write::name(&mut self.0, s);
            self
        }
        pub(crate) fn number(mut self, n: f64) -> Self {
            write::number(&mut self.0, n);
            self
        }
        pub(crate) fn boolean(mut self, b: bool) -> Self {
            write::boolean(&mut self.0, b);
            self
        }
        pub(crate) fn ecma_array(mut self, count: u32) -> Self {
            self.0.push(marker::ECMA_ARRAY);
            self.0.extend_from_slice(&count.to_be_bytes());
            self
        }
        pub(crate) fn object(mut self) -> Self {
            write::object_start(&mut self.0);
            self
        }
        pub(crate) fn end(mut self) -> Self {
            write::object_end(&mut self.0);
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
