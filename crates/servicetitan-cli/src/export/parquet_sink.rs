//! Parquet through the crate's low-level writer (no Arrow): one optional column per dotted
//! field, typed from the stream's schema (integer → INT64, number → DOUBLE, boolean → BOOLEAN,
//! anything else → UTF-8 text, arrays as JSON text); row groups of [`ROW_GROUP`] rows.

use std::io;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;
use serde_json::Value;

use super::columns::{cell_text, ColumnType, Columns};
use super::formats::{parse, Layout, Sink};
use super::output::Destination;

/// Rows per row group.
const ROW_GROUP: usize = 65_536;

enum Values {
    Text(Vec<ByteArray>),
    Integer(Vec<i64>),
    Number(Vec<f64>),
    Boolean(Vec<bool>),
}

/// One column's values of the row group being filled, and its definition levels (0: null).
struct ColumnBuffer {
    values: Values,
    defined: Vec<i16>,
}

impl ColumnBuffer {
    fn new(column_type: ColumnType) -> ColumnBuffer {
        let values = match column_type {
            ColumnType::String => Values::Text(Vec::new()),
            ColumnType::Integer => Values::Integer(Vec::new()),
            ColumnType::Number => Values::Number(Vec::new()),
            ColumnType::Boolean => Values::Boolean(Vec::new()),
        };
        ColumnBuffer { values, defined: Vec::new() }
    }

    /// Adds a value; one that does not fit the column's type is null (and counted).
    fn push(&mut self, value: &Value, mismatches: &mut u64) {
        let fits = match (&mut self.values, value) {
            (_, Value::Null) => false,
            (Values::Text(v), value) => {
                let mut text = String::new();
                cell_text(value, &mut text);
                v.push(ByteArray::from(text.into_bytes()));
                true
            }
            (Values::Integer(v), Value::Number(n)) => n.as_i64().map(|n| v.push(n)).is_some(),
            (Values::Number(v), Value::Number(n)) => n.as_f64().map(|n| v.push(n)).is_some(),
            (Values::Boolean(v), Value::Bool(b)) => {
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
            Values::Text(v) => v.clear(),
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
        };
        let field = Type::primitive_type_builder(&column.name, physical)
            .with_repetition(Repetition::OPTIONAL)
            .with_logical_type(logical)
            .build()?;
        fields.push(Arc::new(field));
    }
    Type::group_type_builder("record").with_fields(fields).build()
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
            let buffer = &self.buffers[at];
            let defined = Some(buffer.defined.as_slice());
            match &buffer.values {
                Values::Text(v) => column.typed::<ByteArrayType>().write_batch(v, defined, None),
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
        let values = records.iter().map(|r| parse(r)).collect::<io::Result<Vec<Value>>>()?;
        self.layout.columns_for(&values);
        self.start()?;
        if self.writer.is_none() {
            return Ok(());
        }
        let mut seen = vec![false; self.buffers.len()];
        for value in &values {
            seen.iter_mut().for_each(|s| *s = false);
            let (buffers, mismatches) = (&mut self.buffers, &mut self.mismatches);
            self.layout.cells(value, |at, leaf| {
                if !seen[at] {
                    seen[at] = true;
                    buffers[at].push(leaf, mismatches);
                }
            });
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
