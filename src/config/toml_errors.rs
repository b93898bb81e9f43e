//! Where a TOML parse error is: the key path it concerns and its line and
//! column, so `hls.playlist_window: invalid type: ... (line 2, column 19)`
//! names what to fix.

/// Turns a toml error into one line: the key path when the error points into
/// the document's keys, toml's own message (which names an unknown key), and
/// the position.
pub(super) fn describe(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let Some(span) = err.span() else {
        return message.to_string();
    };
    let (line, column) = line_column(text, span.start);
    match key_path_at(text, span.start) {
        Some(path) => format!("{path}: {message} (line {line}, column {column})"),
        None => format!("TOML syntax error at line {line}, column {column}: {message}"),
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The dotted key path (`hls.segment_duration`, `streams[1].name`) of the
/// innermost key or value whose source span contains byte offset `at`.
/// `None` when the document does not parse (a syntax error has no key).
fn key_path_at(text: &str, at: usize) -> Option<String> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut path = String::new();
    find_in_table(root.get_ref(), at, &mut path).then_some(path)
}

fn find_in_table(table: &toml::de::DeTable<'_>, at: usize, path: &mut String) -> bool {
    for (key, value) in table {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if find_in_value(value, at, path) || key.span().contains(&at) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn find_in_value(value: &toml::Spanned<toml::de::DeValue<'_>>, at: usize, path: &mut String) -> bool {
    match value.get_ref() {
        toml::de::DeValue::Table(table) => find_in_table(table, at, path) || value.span().contains(&at),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if find_in_value(item, at, path) {
                    return true;
                }
                path.truncate(len);
            }
            value.span().contains(&at)
        }
        _ => value.span().contains(&at),
    }
}

/// The byte range to remove so that parsing can go on past the problem at
/// byte offset `at`: the whole lines of the innermost `key = value` entry, or
/// `[table]` with everything in it, that holds `at`. `None` when `at` is not
/// in an entry that can go (a syntax error, or an `[[array]]` element, whose
/// removal would renumber the elements after it).
pub(super) fn entry_lines_at(text: &str, at: usize) -> Option<std::ops::Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let range = find_entry(root.get_ref(), at)??;
    let start = text.get(..range.start)?.rfind('\n').map_or(0, |i| i + 1);
    let end = text.get(range.end..)?.find('\n').map_or(text.len(), |i| range.end + i);
    Some(start..end)
}

/// `None`: not in this table; `Some(None)`: found, but not removable.
fn find_entry(table: &toml::de::DeTable<'_>, at: usize) -> Option<Option<std::ops::Range<usize>>> {
    for (key, value) in table {
        let entry = key.span().start..extent_end(value);
        match value.get_ref() {
            toml::de::DeValue::Table(inner) => {
                if let Some(found) = find_entry(inner, at) {
                    return Some(found);
                }
            }
            toml::de::DeValue::Array(items) => {
                for item in items {
                    if let toml::de::DeValue::Table(inner) = item.get_ref() {
                        if let Some(found) = find_entry(inner, at) {
                            return Some(found);
                        }
                        if item.span().contains(&at) {
                            return Some(None);
                        }
                    }
                }
            }
            _ => {}
        }
        if key.span().contains(&at) || value.span().contains(&at) {
            return Some(Some(entry));
        }
    }
    None
}

/// Where a value's text ends: for a `[table]`, after the last thing in it.
fn extent_end(value: &toml::Spanned<toml::de::DeValue<'_>>) -> usize {
    let own = value.span().end;
    match value.get_ref() {
        toml::de::DeValue::Table(table) => table.iter().map(|(_, v)| extent_end(v)).fold(own, usize::max),
        toml::de::DeValue::Array(items) => items.iter().map(extent_end).fold(own, usize::max),
        _ => own,
    }
}

/// Replaces `range` of `text` with spaces, keeping line breaks, so every
/// byte offset and line number stays what it was.
pub(super) fn blank(text: &mut String, range: std::ops::Range<usize>) {
    let blanked: String = text
        .get(range.clone())
        .unwrap_or_default()
        .chars()
        .map(|c| if c == '\n' { c } else { ' ' })
        .collect();
    // The range comes from line boundaries of `text`: it is on char boundaries.
    text.replace_range(range, &blanked);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_table() {
        let text = "ab\ncdé\nf";
        let cases = [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (7, (2, 4)),
            (8, (3, 1)),
            (99, (3, 2)),
        ];
        for (at, want) in cases {
            assert_eq!(line_column(text, at), want, "{at}");
        }
    }
}
