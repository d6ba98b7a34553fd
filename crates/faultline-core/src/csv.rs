//! CSV as the exports write it (RFC 4180): a header row, `\r\n` line ends, and a field quoted
//! (with its quotes doubled) when it holds a comma, a quote, a line break, or leading or
//! trailing spaces. Values are written as they are; a spreadsheet may interpret a field
//! starting with `=`.

use std::borrow::Cow;
use std::fmt::Write;

use crate::cursor::Position;
use crate::fault::Fault;
use crate::time::format_micros;

/// The columns of a fault export, in order. Columns are only ever added at the end, so a
/// reader that takes them by position keeps working (`site_name` came last, with the sites).
pub const FAULT_COLUMNS: [&str; 15] = [
    "id",
    "created_at",
    "resolved_at",
    "status",
    "severity",
    "type",
    "resource_id",
    "site_id",
    "microservice_id",
    "message",
    "cause",
    "resource_ancestry_path",
    "ttl",
    "comment_count",
    "site_name",
];

/// One CSV field, quoted when it has to be.
pub fn field(value: &str) -> Cow<'_, str> {
    let needs_quotes =
        value.contains([',', '"', '\r', '\n']) || value.starts_with(' ') || value.ends_with(' ');
    if needs_quotes {
        Cow::Owned(format!("\"{}\"", value.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(value)
    }
}

/// One CSV record with its `\r\n`.
pub fn row(fields: &[&str]) -> String {
    let mut row = fields.iter().map(|f| field(f)).collect::<Vec<_>>().join(",");
    row.push_str("\r\n");
    row
}

/// Append `f`'s record (the columns of [`FAULT_COLUMNS`]) to `out`.
pub fn write_fault(out: &mut String, f: &Fault) {
    out.push_str(&field(&f.id));
    out.push(',');
    out.push_str(&format_micros(f.created_at));
    out.push(',');
    if let Some(resolved) = f.resolved_at {
        out.push_str(&format_micros(resolved));
    }
    for value in [
        f.status.as_str(),
        f.severity.as_str(),
        &f.fault_type,
        &f.resource_id,
        f.site_id.as_deref().unwrap_or(""),
        &f.microservice_id,
        &f.message,
        &f.cause,
        &f.resource_ancestry_path,
    ] {
        out.push(',');
        out.push_str(&field(value));
    }
    let _ = write!(out, ",{},{},", f.ttl, f.comments.len());
    out.push_str(&field(f.site_name.as_deref().unwrap_or("")));
    out.push_str("\r\n");
}

/// A page of a fault export: its records, how many, and where the next page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub text: String,
    pub rows: usize,
    /// The last fault's position (`None` for an empty page).
    pub last: Option<Position>,
}

impl Page {
    /// The page of `faults`, in their order.
    pub fn of(faults: &[Fault]) -> Page {
        let mut text = String::with_capacity(faults.len() * 256);
        for f in faults {
            write_fault(&mut text, f);
        }
        let last = faults.last().map(|f| Position { created_at: f.created_at, id: f.id.clone() });
        Page { text, rows: faults.len(), last }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field(" padded"), "\" padded\"");
        assert_eq!(row(&["a", "", "b,c"]), "a,,\"b,c\"\r\n");
    }
}
