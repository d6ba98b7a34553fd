//! Packed rows: many rows read from SQLite as one string.
//!
//! sqlx's SQLite driver has a cost per row whatever the row holds: each row crosses from the
//! driver's thread to the caller's, with an allocation per column, and that, not SQLite, set the
//! pace of exports and of loading the analytics index. Concatenated by SQLite (`group_concat`)
//! into one value per statement, the rows cross once, as one string. Each field is
//! self-delimiting, so any text survives: a text is its length in bytes, `:` and its bytes (`-`
//! for null); an integer is its decimal digits and `,` (just `,` for null).

use faultline_core::fault::{Comment, Fault};

use crate::error::{StoreError, StoreResult};
use crate::rows::{FAULT_COLUMNS, FaultRow, Kind};

/// The SQL expression that packs `columns` of one row, in order.
pub(super) fn expression(columns: &[(&str, Kind)]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|&(c, kind)| match kind {
            Kind::Text => format!("octet_length({c}) || ':' || {c}"),
            Kind::OptionalText => format!("COALESCE(octet_length({c}) || ':' || {c}, '-')"),
            Kind::Integer => format!("{c} || ','"),
            Kind::OptionalInteger => format!("COALESCE({c}, '') || ','"),
        })
        .collect();
    parts.join(" || ")
}

/// The result columns `COUNT(*), group_concat(…)`: over rows whose columns are named as in
/// `columns`, the row count and the packed rows, in no set order.
pub(super) fn page_columns(columns: &[(&str, Kind)]) -> String {
    format!("COUNT(*), group_concat({}, '')", expression(columns))
}

/// The packed fields of a comment (on alias `c`), in the order of [`faultline_core::fault::Comment`].
const COMMENT_FIELDS: [(&str, Kind); 4] = [
    ("c.id", Kind::Text),
    ("c.user_id", Kind::Text),
    ("c.comment", Kind::Text),
    ("c.created_at", Kind::Integer),
];

/// The faults `select` reads (a statement whose result columns are named as the `faults`
/// table's, then `comments`, a [`comments_column`]), packed in one statement: its row count and
/// its text, for [`faults`]. Each fault's fields are followed by its number of comments and
/// their fields.
pub(super) fn fault_page(select: &str) -> String {
    format!(
        "SELECT COUNT(*), group_concat({} || COALESCE(packed.comments, '0,'), '') FROM ({select}) AS packed",
        expression(&FAULT_COLUMNS.map(|column| (column.name, column.kind)))
    )
}

/// A result column of the fault on alias `f`: its comments packed (their number, then each
/// comment's fields), or NULL when it has none. `faults.comment_count` says which, so the
/// faults without comments, nearly all, cost no lookup in `comments` (otherwise a subquery for
/// every fault of the page).
pub(super) fn comments_column() -> String {
    format!(
        "CASE WHEN f.comment_count > 0 THEN (SELECT COUNT(*) || ',' || group_concat({}, '') \
         FROM comments c WHERE c.fault_id = f.id) END",
        expression(&COMMENT_FIELDS)
    )
}

/// The comments of a [`comments_column`], oldest first; `None` when malformed.
pub(super) fn read_comments(packed: &str) -> Option<Vec<Comment>> {
    let mut fields = Fields(packed);
    let comments = comments(&mut fields)?;
    fields.is_empty().then_some(comments)
}

/// The comments packed at `fields`, oldest first.
fn comments(fields: &mut Fields<'_>) -> Option<Vec<Comment>> {
    let mut comments = Vec::new();
    for _ in 0..fields.integer()? {
        let (id, user_id, comment) =
            (fields.text()?.to_owned(), fields.text()?.to_owned(), fields.text()?.to_owned());
        let created_at = fields.integer()?;
        comments.push(Comment { id, user_id, comment, created_at });
    }
    comments.sort_unstable_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Some(comments)
}

/// The `count` faults of a [`fault_page`], with their comments oldest first, in no set order.
pub(super) fn faults(count: i64, packed: &str) -> StoreResult<Vec<Fault>> {
    let corrupt = || StoreError::Corrupt("a packed page of faults".to_owned());
    let mut fields = Fields(packed);
    let mut faults = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        let mut fault = crate::rows::fault(fault_row(&mut fields).ok_or_else(corrupt)?)?;
        fault.comments = comments(&mut fields).ok_or_else(corrupt)?;
        faults.push(fault);
    }
    if fields.is_empty() { Ok(faults) } else { Err(corrupt()) }
}

/// The next packed fault (its [`FAULT_COLUMNS`]) as the row [`crate::rows::fault`] reads.
fn fault_row(f: &mut Fields<'_>) -> Option<FaultRow> {
    let text = |f: &mut Fields<'_>| f.text().map(str::to_owned);
    Some((
        text(f)?,
        text(f)?,
        text(f)?,
        text(f)?,
        text(f)?,
        text(f)?,
        text(f)?,
        text(f)?,
        text(f)?,
        f.integer()?,
        f.optional_integer()?,
        text(f)?,
        f.optional_text()?.map(str::to_owned),
        f.integer()?,
    ))
}

/// Reads the fields of packed rows in order; each read is `None` on malformed input.
pub(super) struct Fields<'a>(pub &'a str);

impl<'a> Fields<'a> {
    pub fn text(&mut self) -> Option<&'a str> {
        let (length, tail) = self.0.split_once(':')?;
        let length: usize = length.parse().ok()?;
        let value = tail.get(..length)?;
        self.0 = tail.get(length..)?;
        Some(value)
    }

    pub fn optional_text(&mut self) -> Option<Option<&'a str>> {
        match self.0.strip_prefix('-') {
            Some(tail) => {
                self.0 = tail;
                Some(None)
            }
            None => self.text().map(Some),
        }
    }

    pub fn optional_integer(&mut self) -> Option<Option<i64>> {
        let (digits, tail) = self.0.split_once(',')?;
        self.0 = tail;
        if digits.is_empty() { Some(None) } else { digits.parse().ok().map(Some) }
    }

    pub fn integer(&mut self) -> Option<i64> {
        self.optional_integer()?
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_whatever_their_text_holds() {
        let mut fields = Fields("5:flt_a10,,-7:fl\u{e9}:b-20,0:3:1:2");
        assert_eq!(fields.text(), Some("flt_a"));
        assert_eq!(fields.integer(), Some(10));
        assert_eq!(fields.optional_integer(), Some(None));
        assert_eq!(fields.optional_text(), Some(None));
        assert_eq!(fields.text(), Some("fl\u{e9}:b-"));
        assert_eq!(fields.integer(), Some(20));
        assert_eq!(fields.text(), Some(""));
        assert_eq!(fields.optional_text(), Some(Some("1:2")));
        assert!(fields.is_empty());
        assert_eq!(Fields("3:ab").text(), None);
        assert_eq!(Fields("2:\u{e9}").text(), Some("\u{e9}"));
        assert_eq!(Fields("1:\u{e9}").text(), None, "a length inside a character is malformed");
    }
}
