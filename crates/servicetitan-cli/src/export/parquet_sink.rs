//! Parquet through the crate's low-level writer (no Arrow): one optional column per dotted
//! field, typed from the stream's schema (integer → INT64, number → DOUBLE, boolean → BOOLEAN,
//! date-time → TIMESTAMP(MILLIS, UTC), anything else → UTF-8 text, arrays as JSON text); row
//! groups of [`ROW_GROUP`] rows.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use super::columns::{cell_text, ColumnType, Columns};
use super::formats::{Layout, Sink};
use super::output::Destination;
use super::rows::Leaf;

/// Rows per row group.
const ROW_GROUP: usize = 65_536;

enum Values {
    /// The texts one after another, and where each ends: one allocation per row group instead
    /// of one per value (each value becomes a slice of the whole when the group is written).
    Text {
        text: String,
        ends: Vec<usize>,
    },
    Integer(Vec<i64>),
    Number(Vec<f64>),
    Boolean(Vec<bool>),
}

/// One column's values of the row group being filled, and its definition levels (0: null).
struct ColumnBuffer {
    values: Values,
    defined: Vec<i16>,
    timestamps: bool,
}

impl ColumnBuffer {
    fn new(column_type: ColumnType) -> ColumnBuffer {
        let values = match column_type {
            ColumnType::String => Values::Text { text: String::new(), ends: Vec::new() },
            ColumnType::Integer | ColumnType::Timestamp => Values::Integer(Vec::new()),
            ColumnType::Number => Values::Number(Vec::new()),
            ColumnType::Boolean => Values::Boolean(Vec::new()),
        };
        ColumnBuffer { values, defined: Vec::new(), timestamps: column_type == ColumnType::Timestamp }
    }

    /// Adds a value; one that does not fit the column's type is null (and counted).
    fn push(&mut self, value: &Leaf<'_>, mismatches: &mut u64) {
        let fits = match (&mut self.values, value) {
            (_, Leaf::Null) => false,
            (Values::Text { text, ends }, value) => {
                cell_text(value, text);
                ends.push(text.len());
                true
            }
            (Values::Integer(v), Leaf::Text(text)) if self.timestamps => {
                parse_rfc3339_millis(text).map(|ms| v.push(ms)).is_some()
            }
            (Values::Integer(v), Leaf::Number(n)) if !self.timestamps => n.as_i64().map(|n| v.push(n)).is_some(),
            (Values::Number(v), Leaf::Number(n)) => n.as_f64().map(|n| v.push(n)).is_some(),
            (Values::Boolean(v), Leaf::Bool(b)) => {
                v.push(*b);
                true
            }
            _ => false,
        };
        if !fits && !value.is_null() {
            *mismatches += 1;
        }
        self.defined.push(i16::from(fits));
    }

    fn push_null(&mut self) {
        self.defined.push(0);
    }

    fn clear(&mut self) {
        self.defined.clear();
        match &mut self.values {
            Values::Text { text, ends } => {
                text.clear();
                ends.clear();
            }
            Values::Integer(v) => v.clear(),
            Values::Number(v) => v.clear(),
            Values::Boolean(v) => v.clear(),
        }
    }
}

/// The Parquet schema of the columns.
fn schema(columns: &Columns) -> parquet::errors::Result<Type> {
    let mut fields = Vec::with_capacity(columns.len());
    for column in columns.list() {
        let (physical, logical) = match column.column_type {
            ColumnType::String => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
            ColumnType::Integer => (Physical::INT64, None),
            ColumnType::Number => (Physical::DOUBLE, None),
            ColumnType::Boolean => (Physical::BOOLEAN, None),
            ColumnType::Timestamp => {
                (Physical::INT64, Some(LogicalType::Timestamp { is_adjusted_to_u_t_c: true, unit: TimeUnit::MILLIS }))
            }
        };
        let field = Type::primitive_type_builder(&column.name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()?;
        fields.push(Arc::new(field));
    }
    Type::group_type_builder("record").with_fields(fields).build()
}

/// `2026-01-02T03:04:05.678Z` (any number of fraction digits, `Z` or `±hh:mm`, or no zone,
/// read as UTC) to milliseconds since 1970 UTC.
pub fn parse_rfc3339_millis(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes().all(|c| c.is_ascii_digit()).then(|| part.parse().ok())?
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        at = start;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let fraction = text.get(start..at)?;
        if fraction.is_empty() {
            return None;
        }
        let first3: String = fraction.chars().chain(std::iter::repeat('0')).take(3).collect();
        millis = first3.parse::<i64>().ok()?;
    }
    let offset_minutes = match &text[at..] {
        "" | "Z" | "z" => 0,
        zone if zone.len() == 6 && matches!(zone.as_bytes()[0], b'+' | b'-') && zone.as_bytes()[3] == b':' => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (digits(at + 1..at + 3)? * 60 + digits(at + 4..at + 6)?)
        }
        _ => return None,
    };
    // Days since 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn to_io(e: parquet::errors::ParquetError) -> io::Error {
    io::Error::other(e.to_string())
}

/// Parquet, written as row groups fill.
pub struct ParquetSink {
    out: Option<Destination>,
    writer: Option<SerializedFileWriter<Destination>>,
    layout: Layout,
    buffers: Vec<ColumnBuffer>,
    rows: usize,
    mismatches: u64,
}

impl ParquetSink {
    /// A writer to `out` with the schema's columns if known (else the first page's).
    pub fn new(out: Destination, columns: Option<Columns>, tenant: Option<i64>) -> ParquetSink {
        ParquetSink {
            out: Some(out),
            writer: None,
            layout: Layout::new(columns, tenant),
            buffers: Vec::new(),
            rows: 0,
            mismatches: 0,
        }
    }

    fn start(&mut self) -> io::Result<()> {
        if self.writer.is_some() {
            return Ok(());
        }
        let Some(columns) = self.layout.columns() else { return Ok(()) };
        if columns.is_empty() {
            return Ok(());
        }
        let schema = Arc::new(schema(columns).map_err(to_io)?);
        let properties = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
        let out = self.out.take().expect("started once");
        self.writer = Some(SerializedFileWriter::new(out, schema, properties).map_err(to_io)?);
        self.buffers = columns.list().iter().map(|c| ColumnBuffer::new(c.column_type)).collect();
        Ok(())
    }

    fn flush_row_group(&mut self) -> io::Result<()> {
        let Some(writer) = self.writer.as_mut() else { return Ok(()) };
        if self.rows == 0 {
            return Ok(());
        }
        let mut group = writer.next_row_group().map_err(to_io)?;
        let mut at = 0;
        while let Some(mut column) = group.next_column().map_err(to_io)? {
            let buffer = &mut self.buffers[at];
            let defined = Some(buffer.defined.as_slice());
            match &mut buffer.values {
                Values::Text { text, ends } => {
                    let capacity = text.capacity();
                    let all = Bytes::from(std::mem::replace(text, String::with_capacity(capacity)).into_bytes());
                    let starts = std::iter::once(0).chain(ends.iter().copied());
                    let values: Vec<ByteArray> = starts
                        .zip(ends.iter().copied())
                        .map(|(start, end)| ByteArray::from(all.slice(start..end)))
                        .collect();
                    column.typed::<ByteArrayType>().write_batch(&values, defined, None)
                }
                Values::Integer(v) => column.typed::<Int64Type>().write_batch(v, defined, None),
                Values::Number(v) => column.typed::<DoubleType>().write_batch(v, defined, None),
                Values::Boolean(v) => column.typed::<BoolType>().write_batch(v, defined, None),
            }
            .map_err(to_io)?;
            column.close().map_err(to_io)?;
            at += 1;
        }
        group.close().map_err(to_io)?;
        for buffer in &mut self.buffers {
            buffer.clear();
        }
        self.rows = 0;
        Ok(())
    }
}

impl Sink for ParquetSink {
    fn write_page(&mut self, records: &[&str]) -> io::Result<()> {
        self.layout.fix_columns(records)?;
        self.start()?;
        if self.writer.is_none() {
            return Ok(());
        }
        let mut seen = vec![false; self.buffers.len()];
        for record in records {
            seen.iter_mut().for_each(|s| *s = false);
            let (buffers, mismatches) = (&mut self.buffers, &mut self.mismatches);
            self.layout.cells(record, |at, leaf| {
                if !seen[at] {
                    seen[at] = true;
                    buffers[at].push(&leaf, mismatches);
                }
            })?;
            for (buffer, seen) in self.buffers.iter_mut().zip(&seen) {
                if !seen {
                    buffer.push_null();
                }
            }
            self.rows += 1;
            if self.rows >= ROW_GROUP {
                self.flush_row_group()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<Destination> {
        self.start()?;
        self.flush_row_group()?;
        match self.writer.take() {
            Some(writer) => writer.into_inner().map_err(to_io),
            // No column is known (no schema, no record): there is nothing to describe.
            None => Ok(self.out.take().expect("not started")),
        }
    }

    fn left_out(&self) -> Vec<String> {
        let mut notes = self.layout.left_out();
        if self.mismatches > 0 {
            notes.push(format!("({} values that did not fit their column's type were left null)", self.mismatches));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339_millis as parse;

    #[test]
    fn date_times_become_milliseconds() {
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse("2024-01-01T00:01:00.000Z"), Some(1_704_067_260_000));
        assert_eq!(parse("2024-01-01T00:01:00.1234567Z"), Some(1_704_067_260_123));
        assert_eq!(parse("2024-01-01T02:01:00+02:00"), Some(1_704_067_260_000));
        assert_eq!(parse("2024-02-29T00:00:00"), Some(1_709_164_800_000));
        assert_eq!(parse("2024-13-01T00:00:00Z"), None);
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse("2024-01-01T00:00:00+0200"), None);
    }
}
