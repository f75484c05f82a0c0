//! One CSV record at a time, with its quoting checked as polars takes it, so that polars is
//! only ever handed whole, well-formed records and every record knows its line.

use std::io::BufRead;

/// A record over this many lines is taken for a stray quote, before it swallows the file.
const MAX_RECORD_LINES: usize = 10_000;

/// One CSV record's shape, as [`read_record`] found it.
pub(super) struct Record {
    /// Lines it spans: 0 at the end of the file.
    pub(super) lines: usize,
    pub(super) fields: usize,
    /// The first field polars would not split as written, and why.
    pub(super) malformed: Option<(usize, &'static str)>,
}

/// Appends one CSV record (through its line break, or to the end of the file) to `out`.
/// Quoting as polars takes it: `"` opens a quoted field only at the start of a field, `""`
/// inside one is a quote, and a line break inside one continues the record. `delimiter`
/// separates fields (`,` or tab).
pub(super) fn read_record(r: &mut impl BufRead, out: &mut Vec<u8>, delimiter: u8) -> std::io::Result<Record> {
    let mut rec = Record { lines: 0, fields: 1, malformed: None };
    let (mut quoted, mut at_start, mut closed) = (false, true, false);
    while rec.lines < MAX_RECORD_LINES {
        let start = out.len();
        if r.read_until(b'\n', out)? == 0 {
            break;
        }
        rec.lines += 1;
        let mut i = start;
        while i < out.len() {
            let c = out[i];
            i += 1;
            if quoted {
                match c {
                    b'"' if out.get(i) == Some(&b'"') => i += 1,
                    b'"' => (quoted, closed) = (false, true),
                    _ => {}
                }
                continue;
            }
            match c {
                b'"' if at_start => quoted = true,
                c if c == delimiter => {
                    rec.fields += 1;
                    (at_start, closed) = (true, false);
                    continue;
                }
                b'\r' | b'\n' => {}
                _ if closed => {
                    let why = "text after the closing quote (a quoted field ends at its quote)";
                    rec.malformed.get_or_insert((rec.fields - 1, why));
                }
                b'"' => {
                    let why = "a quote inside an unquoted field (quote the whole field and write the quote twice: \"a\"\"b\")";
                    rec.malformed.get_or_insert((rec.fields - 1, why));
                }
                _ => {}
            }
            at_start = false;
        }
        if !quoted {
            return Ok(rec);
        }
    }
    if quoted && rec.lines > 0 {
        let why = if rec.lines >= MAX_RECORD_LINES {
            "a quoted field does not end within 10,000 lines (a stray quote?)"
        } else {
            "a quoted field is never closed"
        };
        rec.malformed.get_or_insert((rec.fields - 1, why));
    }
    Ok(rec)
}

/// The fields of one well-formed record, unquoted.
pub(super) fn fields(record: &[u8], delimiter: u8) -> Vec<Vec<u8>> {
    let record = record.strip_suffix(b"\n").unwrap_or(record);
    let record = record.strip_suffix(b"\r").unwrap_or(record);
    let (mut out, mut field, mut quoted) = (Vec::new(), Vec::new(), false);
    let mut i = 0;
    while i < record.len() {
        let c = record[i];
        match c {
            b'"' if quoted && record.get(i + 1) == Some(&b'"') => {
                field.push(b'"');
                i += 1;
            }
            b'"' => quoted = !quoted,
            c if c == delimiter && !quoted => out.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
        i += 1;
    }
    out.push(field);
    out
}
