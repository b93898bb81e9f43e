//! AMF0 (Adobe AMF0 specification, 2007, section 2), sans-IO: a bounded
//! reader for peer bytes and a writer for ours. RTMP commands and data
//! messages (`rtmp::Session`) and FLV script tags (`flv`'s onMetaData) both
//! read through it.
//!
//! The reader never recurses on the input: a container's extent is found by
//! an iterative walk with a fixed-size stack of [`MAX_DEPTH`] frames, so an
//! object nested 100,000 levels deep is an error after 32 levels, not a
//! stack overflow (which would abort the whole process; rml_amf0 recurses
//! once per level). Every length is checked against the message, and nothing
//! is allocated: values borrow from the message.

/// Containers nested deeper than this are rejected. Real commands and
/// metadata nest 2 or 3 levels.
pub const MAX_DEPTH: usize = 32;

/// AMF0 type markers (AMF0 spec 2.1).
pub(crate) mod marker {
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

/// Why AMF0 bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Amf0Error {
    /// A value or length runs past the end of the message.
    #[error("AMF0 value runs past the end of the message")]
    Truncated,
    /// Objects or arrays nested deeper than [`MAX_DEPTH`].
    #[error("AMF0 values nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A marker with no defined length (movie clip, record set, AMF3 switch)
    /// or not defined at all.
    #[error("AMF0 type marker {0:#04x} is not supported")]
    Unsupported(u8),
    /// An object-end marker where a value should start.
    #[error("AMF0 object end where a value should start")]
    UnexpectedObjectEnd,
    /// A command whose first value is not its name.
    #[error("AMF0 command does not start with a name")]
    NoCommandName,
}

/// One decoded value, borrowing from the message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    Boolean(bool),
    /// String or long string, raw: AMF0 says UTF-8, peers may not.
    String(&'a [u8]),
    /// Object, typed object or ECMA array: all are name/value properties.
    Object(Properties<'a>),
    /// Strict array.
    Array(Items<'a>),
    Null,
    Undefined,
    /// Reference, date, XML document or unsupported: skipped.
    Other,
}

impl<'a> Value<'a> {
    /// The string, when it is one and valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Value::String(bytes) => std::str::from_utf8(bytes).ok(),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<f64> {
        match *self {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<Properties<'a>> {
        match *self {
            Value::Object(properties) => Some(properties),
            _ => None,
        }
    }
}

/// Reads values one after another.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next value; `None` at the end of the input.
    pub fn next_value(&mut self) -> Option<Result<Value<'a>, Amf0Error>> {
        if self.buf.is_empty() {
            return None;
        }
        Some(self.read())
    }

    /// The next value; the end of the input is `Truncated`.
    pub fn read(&mut self) -> Result<Value<'a>, Amf0Error> {
        let len = value_len(self.buf)?;
        let (bytes, rest) = (self.buf.get(..len), self.buf.get(len..));
        let (Some(bytes), Some(rest)) = (bytes, rest) else {
            return Err(Amf0Error::Truncated);
        };
        self.buf = rest;
        Ok(shallow(bytes))
    }

    /// The next value's properties if it is an object or ECMA array, with
    /// each property checked as it is iterated rather than the container as a
    /// whole first: a caller keeps the properties before a malformed one (the
    /// onMetaData of a cut-off FLV file). The container's end is not known,
    /// so this takes the rest of the input. `Ok(None)`, with nothing taken,
    /// for any other type.
    pub fn read_properties_lazily(&mut self) -> Result<Option<Properties<'a>>, Amf0Error> {
        let body = match self.buf.split_first() {
            None => return Err(Amf0Error::Truncated),
            Some((&marker::OBJECT, rest)) => rest,
            // The count is a hint; the end marker ends the array.
            Some((&marker::ECMA_ARRAY, rest)) => rest.get(4..).ok_or(Amf0Error::Truncated)?,
            Some(_) => return Ok(None),
        };
        self.buf = &[];
        Ok(Some(Properties { body }))
    }
}

/// The properties of an object or ECMA array: (name, value) pairs. The
/// container was validated as a whole when it was read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Properties<'a> {
    /// From the first property name; ends with the end marker, or without
    /// one when the container ended with the message.
    body: &'a [u8],
}

impl<'a> Properties<'a> {
    /// The value of the first property called `name`.
    pub fn get(self, name: &str) -> Option<Value<'a>> {
        self.filter_map(Result::ok)
            .find(|(key, _)| *key == name.as_bytes())
            .map(|(_, value)| value)
    }
}

impl<'a> Iterator for Properties<'a> {
    type Item = Result<(&'a [u8], Value<'a>), Amf0Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.body.is_empty() || self.body.starts_with(&[0, 0, marker::OBJECT_END]) {
            return None;
        }
        let result = short_string(self.body, 0).and_then(|(name, end)| {
            let mut reader = Reader::new(self.body.get(end..).unwrap_or(&[]));
            let value = reader.read()?;
            self.body = reader.buf;
            Ok((name, value))
        });
        if result.is_err() {
            self.body = &[];
        }
        Some(result)
    }
}

/// The values of a strict array.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Items<'a> {
    count: u32,
    reader: Reader<'a>,
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<Value<'a>, Amf0Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.count == 0 {
            return None;
        }
        self.count -= 1;
        let result = self.reader.read();
        if result.is_err() {
            self.count = 0;
        }
        Some(result)
    }
}

/// An RTMP command message body (RTMP spec 7.1.1): name, transaction id,
/// command object, then arguments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Command<'a> {
    pub name: &'a [u8],
    /// 0 when absent or not a number (0 means "no reply expected").
    pub transaction_id: f64,
    /// Null when absent.
    pub object: Value<'a>,
    /// The remaining values.
    pub args: Reader<'a>,
}

/// Parses a command's fixed part; the arguments are read lazily.
pub fn parse_command(payload: &[u8]) -> Result<Command<'_>, Amf0Error> {
    let mut reader = Reader::new(payload);
    let Value::String(name) = reader.read()? else {
        return Err(Amf0Error::NoCommandName);
    };
    let transaction_id = reader
        .next_value()
        .transpose()?
        .and_then(|v| v.as_number())
        .unwrap_or(0.0);
    let object = reader.next_value().transpose()?.unwrap_or(Value::Null);
    Ok(Command {
        name,
        transaction_id,
        object,
        args: reader,
    })
}

/// The value bytes (already validated) as a shallow value.
fn shallow(bytes: &[u8]) -> Value<'_> {
    let Some((&marker, rest)) = bytes.split_first() else {
        return Value::Other;
    };
    let after = |n: usize| rest.get(n..).unwrap_or(&[]);
    match marker {
        marker::NUMBER => Value::Number(f64::from_be_bytes(array(rest))),
        marker::BOOLEAN => Value::Boolean(rest.first().is_some_and(|&b| b != 0)),
        marker::STRING => Value::String(after(2)),
        marker::LONG_STRING => Value::String(after(4)),
        marker::OBJECT => Value::Object(Properties { body: rest }),
        marker::ECMA_ARRAY => Value::Object(Properties { body: after(4) }),
        marker::TYPED_OBJECT => {
            let class_len = u16::from_be_bytes(array(rest));
            Value::Object(Properties {
                body: after(2 + usize::from(class_len)),
            })
        }
        marker::STRICT_ARRAY => Value::Array(Items {
            count: u32::from_be_bytes(array(rest)),
            reader: Reader::new(after(4)),
        }),
        marker::NULL => Value::Null,
        marker::UNDEFINED => Value::Undefined,
        _ => Value::Other,
    }
}

/// The first N bytes as an array, zero-padded (only called on validated
/// values, where they are present).
fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = bytes.get(..N) {
        out.copy_from_slice(src);
    }
    out
}

/// `pos + n`, if that is within `buf`.
fn advance(buf: &[u8], pos: usize, n: usize) -> Result<usize, Amf0Error> {
    pos.checked_add(n)
        .filter(|&end| end <= buf.len())
        .ok_or(Amf0Error::Truncated)
}

fn be16(buf: &[u8], pos: usize) -> Result<u16, Amf0Error> {
    match buf.get(pos..pos.saturating_add(2)) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(Amf0Error::Truncated),
    }
}

fn be32(buf: &[u8], pos: usize) -> Result<u32, Amf0Error> {
    match buf.get(pos..pos.saturating_add(4)) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(Amf0Error::Truncated),
    }
}

/// A u16-length string at `pos` (no marker): its bytes and where it ends.
fn short_string(buf: &[u8], pos: usize) -> Result<(&[u8], usize), Amf0Error> {
    let len = usize::from(be16(buf, pos)?);
    let end = advance(buf, pos + 2, len)?;
    Ok((buf.get(pos + 2..end).unwrap_or(&[]), end))
}

/// What the walk is inside of.
#[derive(Debug, Clone, Copy)]
enum Frame {
    /// Object, typed object or ECMA array: name/value pairs up to 00 00 09.
    Properties,
    /// Strict array: this many values still to come.
    Items(u32),
}

/// Length of the value at the start of `buf`, marker included, found
/// without recursion. An outermost object or ECMA array may end with the
/// input instead of its end marker (some encoders write onMetaData so).
fn value_len(buf: &[u8]) -> Result<usize, Amf0Error> {
    let mut stack = [Frame::Items(0); MAX_DEPTH];
    let mut depth = 0;
    let mut pos = 0;
    loop {
        // One value at `pos`.
        let marker = *buf.get(pos).ok_or(Amf0Error::Truncated)?;
        pos += 1;
        let opened = match marker {
            marker::NUMBER => {
                pos = advance(buf, pos, 8)?;
                None
            }
            marker::BOOLEAN => {
                pos = advance(buf, pos, 1)?;
                None
            }
            marker::STRING => {
                pos = short_string(buf, pos)?.1;
                None
            }
            marker::LONG_STRING | marker::XML_DOCUMENT => {
                let len = be32(buf, pos)? as usize;
                pos = advance(buf, pos + 4, len)?;
                None
            }
            marker::NULL | marker::UNDEFINED | marker::UNSUPPORTED => None,
            marker::REFERENCE => {
                pos = advance(buf, pos, 2)?;
                None
            }
            marker::DATE => {
                // f64 milliseconds, s16 time zone.
                pos = advance(buf, pos, 10)?;
                None
            }
            marker::OBJECT => Some(Frame::Properties),
            marker::TYPED_OBJECT => {
                pos = short_string(buf, pos)?.1;
                Some(Frame::Properties)
            }
            marker::ECMA_ARRAY => {
                // The count is a hint; the end marker ends the array.
                pos = advance(buf, pos, 4)?;
                Some(Frame::Properties)
            }
            marker::STRICT_ARRAY => {
                let count = be32(buf, pos)?;
                pos += 4;
                Some(Frame::Items(count))
            }
            marker::OBJECT_END => return Err(Amf0Error::UnexpectedObjectEnd),
            other => return Err(Amf0Error::Unsupported(other)),
        };
        if let Some(frame) = opened {
            *stack.get_mut(depth).ok_or(Amf0Error::TooDeep)? = frame;
            depth += 1;
        }
        // Close finished containers; stop where the next value starts.
        loop {
            let Some(top) = depth.checked_sub(1).and_then(|i| stack.get_mut(i)) else {
                return Ok(pos);
            };
            match top {
                Frame::Items(0) => depth -= 1,
                Frame::Items(left) => {
                    *left -= 1;
                    break;
                }
                Frame::Properties => {
                    if buf.get(pos..pos + 3) == Some(&[0, 0, marker::OBJECT_END]) {
                        pos += 3;
                        depth -= 1;
                    } else if pos == buf.len() && depth == 1 {
                        return Ok(pos);
                    } else {
                        pos = short_string(buf, pos)?.1;
                        break;
                    }
                }
            }
        }
    }
}

/// Appends AMF0 values for our own messages.
pub mod write {
    use super::marker;

    pub fn number(out: &mut Vec<u8>, n: f64) {
        out.push(marker::NUMBER);
        out.extend_from_slice(&n.to_be_bytes());
    }

    pub fn boolean(out: &mut Vec<u8>, b: bool) {
        out.extend_from_slice(&[marker::BOOLEAN, u8::from(b)]);
    }

    /// A string, or a long string past 65535 bytes.
    pub fn string(out: &mut Vec<u8>, s: &str) {
        match u16::try_from(s.len()) {
            Ok(len) => {
                out.push(marker::STRING);
                out.extend_from_slice(&len.to_be_bytes());
            }
            Err(_) => {
                out.push(marker::LONG_STRING);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(s.as_bytes());
    }

    pub fn null(out: &mut Vec<u8>) {
        out.push(marker::NULL);
    }

    pub fn undefined(out: &mut Vec<u8>) {
        out.push(marker::UNDEFINED);
    }

    pub fn object_start(out: &mut Vec<u8>) {
        out.push(marker::OBJECT);
    }

    /// A property name (at most 65535 bytes; ours are constants); its value
    /// follows.
    pub fn name(out: &mut Vec<u8>, name: &str) {
        let bytes = name.as_bytes().get(..usize::from(u16::MAX)).unwrap_or(name.as_bytes());
        out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        out.extend_from_slice(bytes);
    }

    pub fn object_end(out: &mut Vec<u8>) {
        out.extend_from_slice(&[0, 0, marker::OBJECT_END]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rml_rtmp::rml_amf0::{Amf0Value, serialize};
    use std::collections::HashMap;

    #[test]
    fn scalars_known_answers() {
        type Case = (&'static [u8], Value<'static>, usize);
        let cases: &[Case] = &[
            (&[0x00, 0x40, 0x59, 0, 0, 0, 0, 0, 0], Value::Number(100.0), 9),
            (&[0x01, 0x01], Value::Boolean(true), 2),
            (&[0x01, 0x00], Value::Boolean(false), 2),
            (&[0x02, 0x00, 0x02, b'h', b'i', 0xFF], Value::String(b"hi"), 5),
            (&[0x0C, 0, 0, 0, 1, b'x'], Value::String(b"x"), 6),
            (&[0x05], Value::Null, 1),
            (&[0x06], Value::Undefined, 1),
            (&[0x07, 0x00, 0x01], Value::Other, 3),
            (&[0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], Value::Other, 11),
            (&[0x0F, 0, 0, 0, 2, b'<', b'>'], Value::Other, 7),
            (&[0x0D], Value::Other, 1),
        ];
        for &(bytes, want, len) in cases {
            let mut reader = Reader::new(bytes);
            assert_eq!(reader.read(), Ok(want), "{bytes:02x?}");
            assert_eq!(reader.buf.len(), bytes.len() - len, "{bytes:02x?}");
        }
    }

    #[test]
    fn malformed_values() {
        let mut deep = Vec::new();
        for _ in 0..100_000 {
            deep.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
        }
        deep.push(0x05);
        let mut deep_arrays = Vec::new();
        for _ in 0..(MAX_DEPTH + 1) {
            deep_arrays.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        deep_arrays.push(0x05);
        let cases: Vec<(&str, Vec<u8>, Amf0Error)> = vec![
            ("empty", vec![], Amf0Error::Truncated),
            ("short number", vec![0x00, 1, 2, 3], Amf0Error::Truncated),
            (
                "string past the end",
                vec![0x02, 0xFF, 0xFF, b'a'],
                Amf0Error::Truncated,
            ),
            (
                "long string past the end",
                vec![0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
                Amf0Error::Truncated,
            ),
            (
                "property name past the end",
                vec![0x03, 0x00, 0x09, b'a'],
                Amf0Error::Truncated,
            ),
            (
                "object, value missing",
                vec![0x03, 0x00, 0x01, b'a'],
                Amf0Error::Truncated,
            ),
            (
                "strict array count past the end",
                vec![0x0A, 0, 0, 0, 5, 0x05],
                Amf0Error::Truncated,
            ),
            ("nested 100,000 deep", deep, Amf0Error::TooDeep),
            ("arrays nested too deep", deep_arrays, Amf0Error::TooDeep),
            ("movie clip", vec![0x04], Amf0Error::Unsupported(0x04)),
            ("AMF3 switch", vec![0x11, 0x01], Amf0Error::Unsupported(0x11)),
            ("object end as a value", vec![0x09], Amf0Error::UnexpectedObjectEnd),
            (
                "nested object without end marker",
                vec![0x03, 0x00, 0x01, b'a', 0x03, 0x00, 0x01, b'b', 0x05],
                Amf0Error::Truncated,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(Reader::new(&bytes).read(), Err(want), "{name}");
        }
        // Exactly MAX_DEPTH levels is fine.
        let mut ok = Vec::new();
        for _ in 0..MAX_DEPTH {
            ok.extend_from_slice(&[0x0A, 0, 0, 0, 1]);
        }
        ok.push(0x05);
        assert!(matches!(Reader::new(&ok).read(), Ok(Value::Array(_))));
    }

    /// What rml_amf0 (an independent implementation) serializes, we read.
    #[test]
    fn reads_rml_amf0_output() {
        let mut inner = HashMap::new();
        inner.insert("n".to_owned(), Amf0Value::Number(-1.5));
        let mut props = HashMap::new();
        props.insert("app".to_owned(), Amf0Value::Utf8String("live".to_owned()));
        props.insert("inner".to_owned(), Amf0Value::Object(inner));
        props.insert(
            "list".to_owned(),
            Amf0Value::StrictArray(vec![Amf0Value::Boolean(true), Amf0Value::Null]),
        );
        let values = vec![
            Amf0Value::Utf8String("connect".to_owned()),
            Amf0Value::Number(1.0),
            Amf0Value::Object(props),
            Amf0Value::Undefined,
        ];
        let bytes = serialize(&values).unwrap();
        let command = parse_command(&bytes).unwrap();
        assert_eq!(command.name, b"connect");
        assert_eq!(command.transaction_id, 1.0);
        let object = command.object.as_object().unwrap();
        assert_eq!(object.get("app").and_then(|v| v.as_str()), Some("live"));
        let inner = object.get("inner").and_then(|v| v.as_object()).unwrap();
        assert_eq!(inner.get("n"), Some(Value::Number(-1.5)));
        let Some(Value::Array(items)) = object.get("list") else {
            panic!("list is not an array");
        };
        assert_eq!(
            items.collect::<Result<Vec<_>, _>>(),
            Ok(vec![Value::Boolean(true), Value::Null])
        );
        assert_eq!(object.count(), 3);
        let mut args = command.args;
        assert_eq!(args.next_value(), Some(Ok(Value::Undefined)));
        assert_eq!(args.next_value(), None);
    }

    #[test]
    fn ecma_array_typed_object_and_missing_end_marker() {
        let mut bytes = vec![0x08, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0x00, 0x01, b'w', 0x00]);
        bytes.extend_from_slice(&640.0_f64.to_be_bytes());
        // No end marker: the array ends with the input.
        let value = Reader::new(&bytes).read().unwrap();
        let props: Vec<_> = value.as_object().unwrap().collect();
        assert_eq!(props, vec![Ok((&b"w"[..], Value::Number(640.0)))]);

        let typed = [0x10, 0x00, 0x01, b'C', 0x00, 0x01, b'k', 0x05, 0x00, 0x00, 0x09, 0x05];
        let mut reader = Reader::new(&typed);
        let value = reader.read().unwrap();
        assert_eq!(value.as_object().unwrap().get("k"), Some(Value::Null));
        assert_eq!(reader.read(), Ok(Value::Null));
        assert!(reader.is_empty());
    }

    #[test]
    fn lazy_properties_keep_what_precedes_a_problem() {
        type Props = Vec<Result<(&'static [u8], Value<'static>), Amf0Error>>;
        type Case = (&'static str, Vec<u8>, Result<Option<Props>, Amf0Error>);
        let cases: Vec<Case> = vec![
            ("empty", vec![], Err(Amf0Error::Truncated)),
            ("not a container", vec![0x05, 0x05], Ok(None)),
            ("ECMA count cut", vec![0x08, 0, 0], Err(Amf0Error::Truncated)),
            (
                "object, then a cut value",
                vec![0x03, 0x00, 0x01, b'a', 0x05, 0x00, 0x01, b'b', 0x00, 0x40],
                Ok(Some(vec![Ok((&b"a"[..], Value::Null)), Err(Amf0Error::Truncated)])),
            ),
            (
                "ECMA array, then a movie clip",
                vec![
                    0x08, 0, 0, 0, 9, 0x00, 0x01, b'a', 0x01, 0x01, 0x00, 0x01, b'm', 0x04, 0x05,
                ],
                Ok(Some(vec![
                    Ok((&b"a"[..], Value::Boolean(true))),
                    Err(Amf0Error::Unsupported(0x04)),
                ])),
            ),
            (
                "end marker stops, trailing bytes ignored",
                vec![0x03, 0x00, 0x00, 0x09, 0xFF],
                Ok(Some(vec![])),
            ),
        ];
        for (name, bytes, want) in cases {
            let mut reader = Reader::new(&bytes);
            let got = reader
                .read_properties_lazily()
                .map(|props| props.map(|p| p.collect::<Vec<_>>()));
            assert_eq!(got, want, "{name}");
            if matches!(got, Ok(Some(_))) {
                assert!(reader.is_empty(), "{name}: the rest is taken");
            }
        }
    }

    #[test]
    fn command_shapes() {
        assert_eq!(parse_command(&[0x05]), Err(Amf0Error::NoCommandName));
        assert_eq!(parse_command(&[]), Err(Amf0Error::Truncated));
        // Name only: transaction 0, null object, no args.
        let command = parse_command(&[0x02, 0x00, 0x01, b'x']).unwrap();
        assert_eq!(
            (command.name, command.transaction_id, command.object),
            (&b"x"[..], 0.0, Value::Null)
        );
        assert!(command.args.is_empty());
        // A truncated argument is an error when read, not before.
        let command = parse_command(&[0x02, 0x00, 0x01, b'x', 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x05, 0x02, 0x00]).unwrap();
        let mut args = command.args;
        assert_eq!(args.read(), Err(Amf0Error::Truncated));
    }

    #[test]
    fn writer_round_trips_through_the_reader() {
        let mut out = Vec::new();
        write::string(&mut out, "_result");
        write::number(&mut out, 4.0);
        write::object_start(&mut out);
        write::name(&mut out, "level");
        write::string(&mut out, "status");
        write::name(&mut out, "ok");
        write::boolean(&mut out, true);
        write::object_end(&mut out);
        write::null(&mut out);
        write::undefined(&mut out);
        let long = "y".repeat(70_000);
        write::string(&mut out, &long);
        assert_eq!(
            &out[..10],
            &[0x02, 0x00, 0x07, b'_', b'r', b'e', b's', b'u', b'l', b't']
        );
        let command = parse_command(&out).unwrap();
        assert_eq!((command.name, command.transaction_id), (&b"_result"[..], 4.0));
        let object = command.object.as_object().unwrap();
        assert_eq!(object.get("level").and_then(|v| v.as_str()), Some("status"));
        assert_eq!(object.get("ok"), Some(Value::Boolean(true)));
        let mut args = command.args;
        assert_eq!(args.read(), Ok(Value::Null));
        assert_eq!(args.read(), Ok(Value::Undefined));
        assert_eq!(args.read().ok().and_then(|v| v.as_str()).map(str::len), Some(70_000));
        assert!(args.is_empty());
    }

    /// Every prefix and deterministic garbage: a value or an error, never a
    /// panic.
    #[test]
    fn prefixes_and_garbage_never_panic() {
        let mut full = Vec::new();
        write::string(&mut full, "onMetaData");
        full.extend_from_slice(&[0x08, 0, 0, 0, 2, 0x00, 0x01, b'a', 0x0A, 0, 0, 0, 2, 0x05, 0x01, 0x01]);
        full.extend_from_slice(&[
            0x00, 0x01, b'b', 0x10, 0x00, 0x01, b'T', 0x00, 0x00, 0x09, 0x00, 0x00, 0x09,
        ]);
        for len in 0..=full.len() {
            let mut reader = Reader::new(&full[..len]);
            while let Some(Ok(value)) = reader.next_value() {
                if let Value::Object(props) = value {
                    props.for_each(drop);
                }
            }
        }
        let mut state: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let len = (state % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state % 18) as u8
                })
                .collect();
            let _ = parse_command(&bytes).map(|c| {
                let mut args = c.args;
                while let Some(Ok(Value::Object(props))) = args.next_value() {
                    props.for_each(drop);
                }
            });
        }
    }
}
