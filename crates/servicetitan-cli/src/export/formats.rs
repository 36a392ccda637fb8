//! The writers of the three formats. Each takes the records of one page at a time, as the API
//! sent them (JSON text), and writes to a [`Destination`].

use std::collections::BTreeSet;
use std::io::{self, Write};

use serde_json::Value;

use super::columns::{cell_text, Columns, TENANT_COLUMN};
use super::output::Destination;
use super::rows::{walk_text, Leaf};

/// A format's writer.
pub trait Sink: Send {
    /// Writes the records of one page.
    fn write_page(&mut self, records: &[&str]) -> io::Result<()>;
    /// Writes what is buffered and gives the destination back, to be committed.
    fn finish(self: Box<Self>) -> io::Result<Destination>;
    /// Fields of the records that have no column (reported once at the end).
    fn left_out(&self) -> Vec<String> {
        Vec::new()
    }
}

/// JSONL: each record as the API sent it, on its own line; `_tenant_id` added first when the
/// run has several tenants.
pub struct JsonlSink {
    out: Destination,
    buffer: Vec<u8>,
    tenant_field: Option<String>,
}

/// Lines are handed to the destination in chunks of about this size (whole lines only, so
/// tasks sharing stdout never cut each other's lines).
const CHUNK: usize = 256 * 1024;

impl JsonlSink {
    /// A writer to `out`, tagging records with `tenant` when given.
    pub fn new(out: Destination, tenant: Option<i64>) -> JsonlSink {
        JsonlSink {
            out,
            buffer: Vec::with_capacity(CHUNK + 64 * 1024),
            tenant_field: tenant.map(|t| format!("\"{TENANT_COLUMN}\":{t}")),
        }
    }
}

impl Sink for JsonlSink {
    fn write_page(&mut self, records: &[&str]) -> io::Result<()> {
        for record in records {
            match (&self.tenant_field, record.strip_prefix('{')) {
                (Some(field), Some(rest)) => {
                    self.buffer.push(b'{');
                    self.buffer.extend_from_slice(field.as_bytes());
                    if !rest.trim_start().starts_with('}') {
                        self.buffer.push(b',');
                    }
                    self.buffer.extend_from_slice(rest.as_bytes());
                }
                _ => self.buffer.extend_from_slice(record.as_bytes()),
            }
            self.buffer.push(b'\n');
            if self.buffer.len() >= CHUNK {
                self.out.write_all(&self.buffer)?;
                self.buffer.clear();
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<Destination> {
        if !self.buffer.is_empty() {
            self.out.write_all(&self.buffer)?;
        }
        Ok(self.out)
    }
}

/// Parses a record; the engine already checked that the page is JSON.
pub fn parse(record: &str) -> io::Result<Value> {
    serde_json::from_str(record).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Columns fixed at the start (from the schema) or from the first page, and what fell outside.
pub struct Layout {
    columns: Option<Columns>,
    tenant: Option<i64>,
    left_out: BTreeSet<String>,
    /// The dotted name being walked, reused from record to record.
    prefix: String,
}

impl Layout {
    /// `columns` from the schema if known; `tenant` adds the `_tenant_id` column.
    pub fn new(columns: Option<Columns>, tenant: Option<i64>) -> Layout {
        let columns = columns.map(|c| if tenant.is_some() { c.with_tenant_column() } else { c });
        Layout { columns, tenant, left_out: BTreeSet::new(), prefix: String::new() }
    }

    /// Fixes the columns from the records of the first page if the schema gave none.
    pub fn fix_columns(&mut self, page: &[&str]) -> io::Result<()> {
        if self.columns.is_none() {
            let values = page.iter().map(|r| parse(r)).collect::<io::Result<Vec<Value>>>()?;
            let columns = Columns::from_records(values.iter());
            self.columns = Some(if self.tenant.is_some() { columns.with_tenant_column() } else { columns });
        }
        Ok(())
    }

    /// The columns, if fixed.
    pub fn columns(&self) -> Option<&Columns> {
        self.columns.as_ref()
    }

    /// Calls `cell` with each column position and value of a record (given as JSON text).
    pub fn cells(&mut self, record: &str, mut cell: impl FnMut(usize, Leaf<'_>)) -> io::Result<()> {
        let columns = self.columns.as_ref().expect("columns fixed before rows");
        if let (Some(tenant), Some(at)) = (self.tenant, columns.position(TENANT_COLUMN)) {
            cell(at, Leaf::Number(tenant.into()));
        }
        let left_out = &mut self.left_out;
        walk_text(record, columns, &mut self.prefix, &mut |name, position, value| match position {
            Some(at) => cell(at, value),
            None => {
                if !value.is_null() && left_out.len() < 100 {
                    left_out.insert(name.to_string());
                }
            }
        })
    }

    /// Fields that had no column.
    pub fn left_out(&self) -> Vec<String> {
        self.left_out.iter().cloned().collect()
    }
}

/// CSV (RFC 4180): a header with every column, nested objects as dotted columns, arrays as
/// JSON text, null as an empty cell.
pub struct CsvSink {
    writer: csv::Writer<Destination>,
    layout: Layout,
    header_written: bool,
    row: Vec<String>,
}

impl CsvSink {
    /// A writer to `out` with the schema's columns if known.
    pub fn new(out: Destination, columns: Option<Columns>, tenant: Option<i64>) -> CsvSink {
        let writer = csv::WriterBuilder::new().buffer_capacity(1 << 16).from_writer(out);
        CsvSink { writer, layout: Layout::new(columns, tenant), header_written: false, row: Vec::new() }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if let Some(columns) = self.layout.columns() {
            self.writer.write_record(columns.list().iter().map(|c| c.name.as_str()))?;
            self.row = vec![String::new(); columns.len()];
            self.header_written = true;
        }
        Ok(())
    }
}

impl Sink for CsvSink {
    fn write_page(&mut self, records: &[&str]) -> io::Result<()> {
        self.layout.fix_columns(records)?;
        if !self.header_written {
            self.write_header()?;
        }
        for record in records {
            for cell in &mut self.row {
                cell.clear();
            }
            let row = &mut self.row;
            self.layout.cells(record, |at, leaf| {
                // A field named twice keeps its last value, as a parsed object would.
                row[at].clear();
                cell_text(&leaf, &mut row[at]);
            })?;
            self.writer.write_record(self.row.iter())?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> io::Result<Destination> {
        if !self.header_written {
            // No record came: the header alone, when the schema gave it.
            self.write_header()?;
        }
        self.writer.into_inner().map_err(|e| e.into_error())
    }

    fn left_out(&self) -> Vec<String> {
        self.layout.left_out()
    }
}
