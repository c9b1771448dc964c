//! Custom costs CSV: the format, and a streaming validator.
//!
//! The format (README "Custom costs CSV format"): a header row, then one cost
//! per row. Columns, by name in any order: `date` (YYYY-MM-DD), `category`,
//! `amount` (a decimal with `.`, up to 4 decimals, no thousands separators or
//! symbols), `currency` (ISO 4217), and optionally `description`, `sku`,
//! `channel`, `recurrence` (`one_off`, `daily`, `weekly`, `monthly`,
//! `quarterly`, `yearly`). UTF-8 with or without BOM; `,` or `;` delimiter,
//! detected from the header. Strict where ambiguity would corrupt money.
//!
//! The validator reads a stream once, in constant memory: it hashes the
//! bytes, counts them, reports errors per row and column (the first
//! [`MAX_ERRORS_LISTED`], with the total), and hands every valid row to a
//! callback. Amounts are exact decimals, never floats. Text that a
//! spreadsheet would run as a formula is kept as text, and escaped on export
//! ([`spreadsheet_safe`]).

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::io::Read;
use std::str::FromStr;

/// Errors listed in a report; the total is always given.
pub const MAX_ERRORS_LISTED: usize = 100;
/// The largest amount, in either direction.
const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Limits of one file.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_rows: u64,
}

/// What a file is checked against.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `YYYY-MM`: every row must fall in this month.
    pub period: Option<Period>,
}

/// A calendar month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Period {
    pub year: i32,
    pub month: u32,
}

impl Period {
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        NaiveDate::from_ymd_opt(year, month, 1).map(|_| Period { year, month })
    }

    fn contains(&self, d: NaiveDate) -> bool {
        use chrono::Datelike;
        d.year() == self.year && d.month() == self.month
    }
}

impl TryFrom<String> for Period {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Period::parse(&s).ok_or_else(|| "a period is YYYY-MM".to_owned())
    }
}

impl From<Period> for String {
    fn from(p: Period) -> String {
        format!("{:04}-{:02}", p.year, p.month)
    }
}

/// How often a cost recurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recurrence {
    OneOff,
    Daily,
    Weekly,
    Monthly,
    Quarterly,
    Yearly,
}

impl FromStr for Recurrence {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "" | "one_off" => Recurrence::OneOff,
            "daily" => Recurrence::Daily,
            "weekly" => Recurrence::Weekly,
            "monthly" => Recurrence::Monthly,
            "quarterly" => Recurrence::Quarterly,
            "yearly" => Recurrence::Yearly,
            _ => return Err(()),
        })
    }
}

/// One valid cost. Its text borrows from the row as read (validation
/// allocates nothing a row); `into_owned` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostRow<'a> {
    pub date: NaiveDate,
    pub category: Cow<'a, str>,
    pub description: Cow<'a, str>,
    /// Exact decimal, as text.
    pub amount: Decimal,
    pub currency: Cow<'a, str>,
    pub sku: Cow<'a, str>,
    pub channel: Cow<'a, str>,
    pub recurrence: Recurrence,
}

impl CostRow<'_> {
    /// A row kept past the one it was read from (the tests collect rows).
    #[cfg(test)]
    pub fn into_owned(self) -> CostRow<'static> {
        CostRow {
            date: self.date,
            category: Cow::Owned(self.category.into_owned()),
            description: Cow::Owned(self.description.into_owned()),
            amount: self.amount,
            currency: Cow::Owned(self.currency.into_owned()),
            sku: Cow::Owned(self.sku.into_owned()),
            channel: Cow::Owned(self.channel.into_owned()),
            recurrence: self.recurrence,
        }
    }

    /// Appends the row as one JSON line (the staged format), without going
    /// through the formatting machinery: this runs once per row.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        use chrono::Datelike;
        // Most text needs no escaping: copied as is, else serde_json escapes it.
        let text = |out: &mut Vec<u8>, s: &str| {
            if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
                out.push(b'"');
                out.extend_from_slice(s.as_bytes());
                out.push(b'"');
            } else {
                serde_json::to_writer(&mut *out, s).expect("strings serialize");
            }
        };
        let digits = |out: &mut Vec<u8>, n: u32, width: u32| {
            for p in (0..width).rev() {
                out.push(b'0' + (n / 10u32.pow(p) % 10) as u8);
            }
        };
        out.extend_from_slice(b"{\"date\":\"");
        digits(out, self.date.year().clamp(0, 9999) as u32, 4);
        out.push(b'-');
        digits(out, self.date.month(), 2);
        out.push(b'-');
        digits(out, self.date.day(), 2);
        out.extend_from_slice(b"\",\"category\":");
        text(out, &self.category);
        out.extend_from_slice(b",\"description\":");
        text(out, &self.description);
        out.extend_from_slice(b",\"amount\":\"");
        write_decimal(out, &self.amount);
        out.extend_from_slice(b"\",\"currency\":");
        text(out, &self.currency);
        out.extend_from_slice(b",\"sku\":");
        text(out, &self.sku);
        out.extend_from_slice(b",\"channel\":");
        text(out, &self.channel);
        let recurrence = match self.recurrence {
            Recurrence::OneOff => "one_off",
            Recurrence::Daily => "daily",
            Recurrence::Weekly => "weekly",
            Recurrence::Monthly => "monthly",
            Recurrence::Quarterly => "quarterly",
            Recurrence::Yearly => "yearly",
        };
        out.extend_from_slice(b",\"recurrence\":\"");
        out.extend_from_slice(recurrence.as_bytes());
        out.extend_from_slice(b"\"}\n");
    }
}

/// `d` as its `Display` writes it (`-`, the digits, `.` and `scale`
/// decimals), without the formatting machinery: once per ingested row.
fn write_decimal(out: &mut Vec<u8>, d: &Decimal) {
    let mut digits = [0u8; 40];
    let mut n = d.mantissa().unsigned_abs();
    let mut len = 0;
    while n > 0 || len == 0 {
        digits[len] = b'0' + (n % 10) as u8;
        n /= 10;
        len += 1;
    }
    let scale = d.scale() as usize;
    while len <= scale {
        digits[len] = b'0';
        len += 1;
    }
    if d.is_sign_negative() {
        out.push(b'-');
    }
    for i in (0..len).rev() {
        out.push(digits[i]);
        if i == scale && i > 0 {
            out.push(b'.');
        }
    }
}

/// A problem with one row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub code: String,
    pub message: String,
}

/// A problem with the whole file: nothing of it can be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FileError {
    pub code: String,
    pub message: String,
}

fn file_error(code: &str, message: impl Into<String>) -> FileError {
    FileError { code: code.into(), message: message.into() }
}

/// What validation found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub bytes: u64,
    pub rows: u64,
    pub valid_rows: u64,
    pub error_total: u64,
    pub errors: Vec<RowError>,
    /// SHA-256 of the file's bytes (duplicate uploads).
    pub sha256: String,
    pub delimiter: String,
    pub first_date: Option<NaiveDate>,
    pub last_date: Option<NaiveDate>,
}

impl Report {
    fn error(&mut self, line: u64, column: Option<&str>, code: &str, message: String) {
        self.error_total += 1;
        if self.errors.len() < MAX_ERRORS_LISTED {
            self.errors.push(RowError { line, column: column.map(str::to_owned), code: code.into(), message });
        }
    }
}

/// Counts, hashes and limits the bytes read through it. The hash is
/// ring's SHA-256, assembly that uses the CPU's SHA instructions where there
/// are some, whatever the build's optimisation level.
struct Metered<R> {
    inner: R,
    hash: Hasher,
    bytes: u64,
    max: u64,
}

/// The bytes a hasher takes at a time.
const HASH_CHUNK: usize = 256 * 1024;

/// SHA-256 of everything read, computed on a thread of its own: on one
/// core, hashing (even with the CPU's SHA instructions) was a fifth of
/// validation. Bytes go over in chunks; the hasher hands each chunk back
/// for reuse, so memory stays at a few chunks whatever the file's size.
struct Hasher {
    pending: Vec<u8>,
    chunks: std::sync::mpsc::SyncSender<Vec<u8>>,
    spent: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= HASH_CHUNK {
            self.send();
        }
    }

    fn send(&mut self) {
        let next = self.spent.try_recv().unwrap_or_else(|_| Vec::with_capacity(HASH_CHUNK));
        let full = std::mem::replace(&mut self.pending, next);
        // A hasher gone means the scope is ending: nothing to keep.
        let _ = self.chunks.send(full);
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.max {
            return Err(std::io::Error::other(TooLarge));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too large")
    }
}

impl std::error::Error for TooLarge {}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Col {
    Date,
    Category,
    Description,
    Amount,
    Currency,
    Sku,
    Channel,
    Recurrence,
}

const COLUMNS: [(&str, Col, bool); 8] = [
    ("date", Col::Date, true),
    ("category", Col::Category, true),
    ("description", Col::Description, false),
    ("amount", Col::Amount, true),
    ("currency", Col::Currency, true),
    ("sku", Col::Sku, false),
    ("channel", Col::Channel, false),
    ("recurrence", Col::Recurrence, false),
];

/// A strict decimal: `-?digits(.digits{1,4})?`.
pub fn parse_amount(s: &str) -> Result<Decimal, &'static str> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || (body.contains('.') && frac.is_empty()) {
        return Err("must be a number like 1234.56 (a `.` for decimals, no thousands separators or symbols)");
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 4 {
        return Err("has more than 4 decimals, or a character that is not a digit");
    }
    if int.len() > 13 {
        return Err("is too large");
    }
    let d = Decimal::from_str_exact(s).map_err(|_| "is not a valid number")?;
    if d.abs() > Decimal::from(MAX_AMOUNT) {
        return Err("is too large");
    }
    Ok(d)
}

/// Whether a spreadsheet would read the text as a formula: it starts
/// (after any spaces) with a formula character or its full-width form
/// (which some spreadsheets normalise), or with a tab or carriage return.
pub fn is_formula_like(s: &str) -> bool {
    let first = s.trim_start_matches(' ').chars().next();
    s.starts_with(['\t', '\r'])
        || matches!(first, Some('=' | '+' | '-' | '@' | '\u{FF1D}' | '\u{FF0B}' | '\u{FF0D}' | '\u{FF20}'))
}

/// Text as a spreadsheet export must write it: formula-like text gets a
/// leading `'` so it is shown, never run (OWASP CSV injection).
pub fn spreadsheet_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if is_formula_like(s) {
        std::borrow::Cow::Owned(format!("'{s}"))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn detect_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|b| *b == b'\n').next().unwrap_or(head);
    let (mut commas, mut semis, mut quoted) = (0, 0, false);
    for b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => commas += 1,
            b';' if !quoted => semis += 1,
            _ => {}
        }
    }
    if semis > commas {
        b';'
    } else {
        b','
    }
}

fn text(field: &[u8]) -> Option<&str> {
    std::str::from_utf8(field).ok()
}

/// The columns of the costs export (`GET .../costs/export`): a file upload
/// reads them back (`upload_id` is an extra column it ignores).
pub const EXPORT_HEADER: [&str; 9] =
    ["date", "category", "description", "amount", "currency", "sku", "channel", "recurrence", "upload_id"];

/// One row of the export: the text fields made safe for spreadsheets
/// (written with every text field quoted).
pub fn export_record(row: &CostRow<'_>, upload_id: &str) -> [String; 9] {
    let recurrence =
        serde_json::to_value(row.recurrence).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    [
        row.date.to_string(),
        spreadsheet_safe(&row.category).into_owned(),
        spreadsheet_safe(&row.description).into_owned(),
        row.amount.to_string(),
        row.currency.to_string(),
        spreadsheet_safe(&row.sku).into_owned(),
        spreadsheet_safe(&row.channel).into_owned(),
        recurrence,
        upload_id.to_owned(),
    ]
}

/// Validates a CSV stream; every valid row goes to `on_row`. A file error
/// means nothing of the file is usable; row errors are in the report.
pub fn validate<R: Read>(
    reader: R,
    limits: Limits,
    options: &Options,
    on_row: impl FnMut(CostRow<'_>) -> std::io::Result<()>,
) -> Result<Report, FileError> {
    std::thread::scope(|scope| {
        let (chunks, to_hash) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (give_back, spent) = std::sync::mpsc::channel();
        let hashing = scope.spawn(move || {
            let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
            for mut chunk in to_hash {
                hash.update(&chunk);
                chunk.clear();
                let _ = give_back.send(chunk);
            }
            hash.finish()
        });
        let hash = Hasher { pending: Vec::with_capacity(HASH_CHUNK), chunks, spent };
        let (mut report, mut hash) = validate_hashing(reader, hash, limits, options, on_row)?;
        hash.send();
        drop(hash);
        let digest = hashing.join().map_err(|_| file_error("internal_error", "The file could not be hashed."))?;
        report.sha256 = hex::encode(digest);
        Ok(report)
    })
}

/// [`validate`], with the bytes read going to `hash` (the caller finishes it).
fn validate_hashing<R: Read>(
    reader: R,
    hash: Hasher,
    limits: Limits,
    options: &Options,
    mut on_row: impl FnMut(CostRow<'_>) -> std::io::Result<()>,
) -> Result<(Report, Hasher), FileError> {
    let mut metered = Metered { inner: reader, hash, bytes: 0, max: limits.max_bytes };
    // Look at the start: empty, binary, BOM, delimiter.
    let mut head = vec![0u8; 8192];
    let mut filled = 0;
    while filled < head.len() {
        match metered.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.get_ref().is_some_and(|i| i.is::<TooLarge>()) => {
                return Err(file_error(
                    "file_too_large",
                    format!("The file is larger than {} bytes.", limits.max_bytes),
                ))
            }
            Err(e) => return Err(file_error("read_failed", format!("The file could not be read: {e}"))),
        }
    }
    head.truncate(filled);
    let start = if head.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
    if head[start..].iter().all(|b| b.is_ascii_whitespace()) {
        return Err(file_error("empty_file", "The file is empty."));
    }
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Err(file_error("wrong_encoding", "The file is UTF-16. Save it as CSV UTF-8."));
    }
    if head.contains(&0) {
        return Err(file_error("binary_file", "This is not a text file. Export your costs as CSV (UTF-8)."));
    }
    let delimiter = detect_delimiter(&head[start..]);
    let chained = std::io::Cursor::new(head[start..].to_vec()).chain(&mut metered);
    let mut csv = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).flexible(true).from_reader(chained);

    let mut report = Report { delimiter: (delimiter as char).to_string(), ..Report::default() };
    let header = csv
        .byte_headers()
        .map_err(|e| file_error("unreadable_header", format!("The header row could not be read: {e}")))?
        .clone();
    let mut map: Vec<Option<Col>> = Vec::with_capacity(header.len());
    let mut header_problems = Vec::new();
    for (i, raw) in header.iter().enumerate() {
        let Some(name) = text(raw).map(|s| s.trim().to_ascii_lowercase()) else {
            return Err(file_error("wrong_encoding", "The header row is not UTF-8. Save the file as CSV UTF-8."));
        };
        match COLUMNS.iter().find(|(n, _, _)| *n == name) {
            Some((_, col, _)) if map.contains(&Some(*col)) => {
                header_problems.push(format!("column {name} appears twice"))
            }
            Some((_, col, _)) => map.push(Some(*col)),
            // The export's own column: an exported file uploads again as it is.
            None if name == "upload_id" => map.push(None),
            None if name.is_empty() => header_problems.push(format!("column {} has no name", i + 1)),
            None => header_problems.push(format!("unknown column {name:?}")),
        }
        if map.len() < i + 1 {
            map.push(None);
        }
    }
    for (name, col, required) in COLUMNS {
        if required && !map.contains(&Some(col)) {
            header_problems.push(format!("missing required column {name}"));
        }
    }
    if !header_problems.is_empty() {
        return Err(file_error(
            "invalid_header",
            format!(
                "The header row is not valid: {}. Columns are date, category, amount, currency and optionally description, sku, channel, recurrence.",
                header_problems.join("; ")
            ),
        ));
    }

    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                if let csv::ErrorKind::Io(io) = e.kind() {
                    if io.get_ref().is_some_and(|i| i.is::<TooLarge>()) {
                        return Err(file_error(
                            "file_too_large",
                            format!("The file is larger than {} bytes.", limits.max_bytes),
                        ));
                    }
                }
                return Err(file_error("unreadable_file", format!("The file could not be read as CSV: {e}")));
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // a blank line
        }
        report.rows += 1;
        if report.rows > limits.max_rows {
            return Err(file_error(
                "too_many_rows",
                format!("The file has more than {} rows; split it.", limits.max_rows),
            ));
        }
        if record.len() != map.len() {
            report.error(
                line,
                None,
                "ragged_row",
                format!("has {} fields, the header has {}", record.len(), map.len()),
            );
            continue;
        }
        match parse_row(&record, &map, options) {
            Ok(row) => {
                report.valid_rows += 1;
                report.first_date = Some(report.first_date.map_or(row.date, |d| d.min(row.date)));
                report.last_date = Some(report.last_date.map_or(row.date, |d| d.max(row.date)));
                on_row(row).map_err(|e| file_error("ingest_failed", format!("Valid rows could not be saved: {e}")))?;
            }
            Err(problems) => {
                for (column, code, message) in problems {
                    report.error(line, Some(column), code, message);
                }
            }
        }
    }
    if report.rows == 0 {
        return Err(file_error("no_rows", "The file has a header but no rows."));
    }
    drop(csv);
    report.bytes = metered.bytes;
    Ok((report, metered.hash))
}

type Problems = Vec<(&'static str, &'static str, String)>;

/// Whether `code` is an ISO 4217 code in capitals: a bit a three-letter
/// code, asked of `iso_currency` once per process (about 2 ms; its
/// `from_code` compares the text with each code in turn, and this runs
/// once per row).
fn is_currency_code(code: &str) -> bool {
    const CODES: usize = 26 * 26 * 26;
    static KNOWN: std::sync::OnceLock<Vec<u64>> = std::sync::OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut bits = vec![0u64; CODES.div_ceil(64)];
        for i in 0..CODES {
            let letters = [i / 676, i / 26 % 26, i % 26].map(|n| b'A' + n as u8);
            let text = std::str::from_utf8(&letters).expect("ASCII letters");
            if iso_currency::Currency::from_code(text).is_some() {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        bits
    });
    let Ok([x, y, z]) = <[u8; 3]>::try_from(code.as_bytes()) else { return false };
    if ![x, y, z].iter().all(u8::is_ascii_uppercase) {
        return false;
    }
    let i = (usize::from(x - b'A') * 26 + usize::from(y - b'A')) * 26 + usize::from(z - b'A');
    known[i / 64] & (1 << (i % 64)) != 0
}

/// `YYYY-MM-DD`, strictly (a fast path: this runs once per row).
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, d| d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0')))
    };
    NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)
}

fn column_name(col: Col) -> &'static str {
    match col {
        Col::Date => "date",
        Col::Category => "category",
        Col::Description => "description",
        Col::Amount => "amount",
        Col::Currency => "currency",
        Col::Sku => "sku",
        Col::Channel => "channel",
        Col::Recurrence => "recurrence",
    }
}

fn parse_row<'r>(record: &'r csv::ByteRecord, map: &[Option<Col>], options: &Options) -> Result<CostRow<'r>, Problems> {
    let mut problems: Problems = Vec::new();
    let mut row = CostRow {
        date: NaiveDate::MIN,
        category: Cow::Borrowed(""),
        description: Cow::Borrowed(""),
        amount: Decimal::ZERO,
        currency: Cow::Borrowed(""),
        sku: Cow::Borrowed(""),
        channel: Cow::Borrowed(""),
        recurrence: Recurrence::OneOff,
    };
    // The whole row is checked as UTF-8 once; only a row that fails is
    // checked field by field (to name the field).
    let whole = std::str::from_utf8(record.as_slice()).ok();
    for (i, (field, col)) in record.iter().zip(map).enumerate() {
        let Some(col) = col else { continue };
        let name = column_name(*col);
        let checked = match whole {
            Some(w) => record.range(i).and_then(|r| w.get(r)),
            None => text(field),
        };
        let Some(value) = checked else {
            problems.push((name, "wrong_encoding", "is not UTF-8 text".into()));
            continue;
        };
        let value = value.trim_matches(|c| c == ' ');
        let mut limited = |max: usize, required: bool, slot: &mut Cow<'r, str>| {
            // The quote our export (and a spreadsheet) puts before formula-like
            // text is not part of it: an exported file reads back the same.
            let value = match value.strip_prefix('\'') {
                Some(rest) if is_formula_like(rest) => rest,
                _ => value,
            };
            // ASCII text (most) is checked byte by byte.
            let (length, control) = if value.is_ascii() {
                (value.len(), value.bytes().any(|b| b.is_ascii_control() && b != b'\t' && b != b'\r'))
            } else {
                (value.chars().count(), value.chars().any(|c| c.is_control() && c != '\t' && c != '\r'))
            };
            if required && value.is_empty() {
                problems.push((name, "required", "is empty".into()));
            } else if length > max {
                problems.push((name, "too_long", format!("is longer than {max} characters")));
            } else if control {
                problems.push((name, "control_character", "contains a control character".into()));
            } else {
                *slot = Cow::Borrowed(value);
            }
        };
        match col {
            Col::Category => limited(64, true, &mut row.category),
            Col::Description => limited(500, false, &mut row.description),
            Col::Sku => limited(100, false, &mut row.sku),
            Col::Channel => limited(64, false, &mut row.channel),
            Col::Date => match parse_date(value) {
                Some(d) => {
                    if options.period.is_some_and(|p| !p.contains(d)) {
                        problems.push((name, "outside_period", "is outside the period of this upload".into()));
                    }
                    row.date = d;
                }
                None => problems.push((name, "invalid_date", "must be a date like 2026-11-30 (YYYY-MM-DD)".into())),
            },
            Col::Amount => match parse_amount(value) {
                Ok(a) => row.amount = a,
                Err(why) => problems.push((name, "invalid_amount", why.into())),
            },
            Col::Currency => {
                if is_currency_code(value) {
                    row.currency = Cow::Borrowed(value);
                } else {
                    problems.push((
                        name,
                        "invalid_currency",
                        "must be an ISO 4217 code in capitals, like EUR or USD".into(),
                    ));
                }
            }
            Col::Recurrence => match value.parse() {
                Ok(r) => row.recurrence = r,
                Err(()) => problems.push((
                    name,
                    "invalid_recurrence",
                    "must be one_off, daily, weekly, monthly, quarterly or yearly".into(),
                )),
            },
        }
    }
    if problems.is_empty() {
        Ok(row)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_are_those_iso_currency_knows() {
        for x in b'A'..=b'Z' {
            for y in b'A'..=b'Z' {
                for z in b'A'..=b'Z' {
                    let code = String::from_utf8(vec![x, y, z]).unwrap();
                    assert_eq!(is_currency_code(&code), iso_currency::Currency::from_code(&code).is_some(), "{code}");
                }
            }
        }
        assert!(is_currency_code("EUR") && is_currency_code("USD"));
        for wrong in ["usd", "Usd", "US", "USDD", "", "U\u{20ac}", "\u{20ac}UR", "[[[", "@@@"] {
            assert!(!is_currency_code(wrong), "{wrong}");
        }
    }

    #[test]
    fn amounts_are_written_as_display_writes_them() {
        for text in [
            "0",
            "-0",
            "0.00",
            "-0.00",
            "5",
            "-5",
            "0.05",
            "-0.0001",
            "12.5",
            "12.50",
            "1234.5678",
            "-9999999999999.9999",
            "100",
            "007.10",
        ] {
            let d = Decimal::from_str_exact(text).unwrap();
            let mut out = Vec::new();
            write_decimal(&mut out, &d);
            assert_eq!(String::from_utf8(out).unwrap(), d.to_string(), "{text}");
        }
    }

    const LIMITS: Limits = Limits { max_bytes: 1 << 20, max_rows: 1000 };

    fn run(input: &[u8]) -> (Result<Report, FileError>, Vec<CostRow<'static>>) {
        let mut rows = Vec::new();
        let r = validate(input, LIMITS, &Options::default(), |row| {
            rows.push(row.into_owned());
            Ok(())
        });
        (r, rows)
    }

    #[test]
    fn a_good_file_in_either_dialect() {
        let comma = "date,category,description,amount,currency\n2026-11-01,shipping,\"Courier, express\",12.50,EUR\n2026-11-02,tools,=HYPERLINK(\"x\"),-3,USD\n";
        let (r, rows) = run(comma.as_bytes());
        let r = r.unwrap();
        assert_eq!((r.rows, r.valid_rows, r.error_total, r.delimiter.as_str()), (2, 2, 0, ","));
        assert_eq!(rows[0].amount, Decimal::from_str("12.50").unwrap());
        assert_eq!(rows[0].description, "Courier, express");
        assert_eq!(rows[1].description, "=HYPERLINK(\"x\")", "kept as text");
        let semi = "\u{feff}Date;Category;Amount;Currency;Recurrence\n2026-11-01;agency fees;1500.0000;EUR;monthly\n";
        let (r, rows) = run(semi.as_bytes());
        assert_eq!(r.unwrap().delimiter, ";");
        assert_eq!(rows[0].recurrence, Recurrence::Monthly);
    }

    #[test]
    fn bad_rows_are_reported_by_line_and_column() {
        let input = "date,category,amount,currency\n\
            2026-13-01,x,1,EUR\n\
            2026-11-01,x,1.234.5,EUR\n\
            2026-11-01,x,\"1,50\",EUR\n\
            2026-11-01,x,12,eur\n\
            2026-11-01,,12,EUR\n\
            2026-11-01,x,12\n\
            2026-11-01,x,12.12345,EUR\n\
            2026-11-01,x,1e5,EUR\n\
            2026-11-01,x,+5,EUR\n\
            2026-11-01,ok,5,EUR\n";
        let (r, rows) = run(input.as_bytes());
        let r = r.unwrap();
        assert_eq!((r.rows, r.valid_rows, r.error_total), (10, 1, 9));
        let by_line: Vec<(u64, Option<&str>, &str)> =
            r.errors.iter().map(|e| (e.line, e.column.as_deref(), e.code.as_str())).collect();
        assert_eq!(
            by_line,
            [
                (2, Some("date"), "invalid_date"),
                (3, Some("amount"), "invalid_amount"),
                (4, Some("amount"), "invalid_amount"),
                (5, Some("currency"), "invalid_currency"),
                (6, Some("category"), "required"),
                (7, None, "ragged_row"),
                (8, Some("amount"), "invalid_amount"),
                (9, Some("amount"), "invalid_amount"),
                (10, Some("amount"), "invalid_amount"),
            ]
        );
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn bad_files_are_refused_whole() {
        for (input, code) in [
            (&b""[..], "empty_file"),
            (&b"  \n\n"[..], "empty_file"),
            (&b"\x89PNG\r\n\x1a\n\0\0\0"[..], "binary_file"),
            (&b"\xff\xfed\0a\0t\0e\0"[..], "wrong_encoding"),
            (&b"date,category,amount\n2026-11-01,x,1\n"[..], "invalid_header"),
            (&b"date,category,amount,currency,price\n"[..], "invalid_header"),
            (&b"date,category,amount,currency\n"[..], "no_rows"),
            (&b"date,category,amount,currency\n2026-11-01,caf\xe9,1,EUR\n"[..], "ok"),
        ] {
            let (r, _) = run(input);
            match (r, code) {
                (Ok(r), "ok") => assert_eq!(r.errors[0].code, "wrong_encoding"),
                (Err(e), code) => assert_eq!(e.code, code, "{input:?}"),
                (Ok(r), code) => panic!("{code} expected, got {r:?}"),
            }
        }
    }

    #[test]
    fn limits_are_enforced() {
        let mut big = b"date,category,amount,currency\n".to_vec();
        for _ in 0..20 {
            big.extend_from_slice(b"2026-11-01,x,1,EUR\n");
        }
        let r = validate(&big[..], Limits { max_bytes: 100, max_rows: 1000 }, &Options::default(), |_| Ok(()));
        assert_eq!(r.unwrap_err().code, "file_too_large");
        let r = validate(&big[..], Limits { max_bytes: 1 << 20, max_rows: 5 }, &Options::default(), |_| Ok(()));
        assert_eq!(r.unwrap_err().code, "too_many_rows");
    }

    #[test]
    fn periods_bound_the_rows_and_the_hash_is_of_the_bytes() {
        let input = b"date,category,amount,currency\n2026-11-30,x,1,EUR\n2026-12-01,x,1,EUR\n";
        let options = Options { period: Period::parse("2026-11") };
        let r = validate(&input[..], LIMITS, &options, |_| Ok(())).unwrap();
        assert_eq!(r.errors[0].code, "outside_period");
        assert_eq!(r.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(input)));
        assert!(Period::parse("2026-13").is_none() && Period::parse("26-11").is_none());
    }

    #[test]
    fn the_hash_of_a_file_of_many_chunks_is_of_all_its_bytes() {
        // Hashed on another thread, a chunk at a time: every byte, in order.
        let mut input = b"date,category,amount,currency\n".to_vec();
        for i in 0..40_000 {
            input.extend_from_slice(format!("2026-11-{:02},cat{i},{i}.5,EUR\n", i % 28 + 1).as_bytes());
        }
        assert!(input.len() > 3 * HASH_CHUNK);
        let r = validate(&input[..], Limits { max_bytes: 1 << 30, max_rows: 1 << 20 }, &Options::default(), |_| Ok(()));
        let r = r.unwrap();
        assert_eq!(r.valid_rows, 40_000);
        assert_eq!(r.bytes, input.len() as u64);
        assert_eq!(r.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&input)));
    }

    #[test]
    fn the_fast_json_line_reads_back_as_the_row() {
        let input = "date,category,description,amount,currency,recurrence\n2026-01-09,\"a \"\"q\"\"\",\u{e9}\\n,-0.0001,JPY,yearly\n";
        let (_, rows) = run(input.as_bytes());
        let mut line = Vec::new();
        rows[0].write_json_line(&mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        let back: CostRow = serde_json::from_slice(&line).unwrap();
        assert_eq!(back, rows[0]);
    }

    #[test]
    fn formula_text_is_escaped_for_spreadsheets() {
        for s in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert!(spreadsheet_safe(s).starts_with('\''), "{s:?}");
        }
        assert_eq!(spreadsheet_safe("Courier"), "Courier");
        // Full-width forms, and formulas behind leading spaces.
        for s in ["\u{FF1D}1+1", "\u{FF0B}1", "\u{FF20}SUM(A1)", "  =1+1", " -2"] {
            assert!(spreadsheet_safe(s).starts_with('\''), "{s:?}");
        }
    }
}
