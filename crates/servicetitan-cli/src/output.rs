//! Standard output for data: a closed pipe (`| head`) ends the command quietly.

use std::io::Write;

use crate::exit::CliResult;

/// Whether the reader still wants more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep writing.
    More,
    /// The reader closed the pipe: stop, without an error.
    Closed,
}

/// Writes `bytes` to `out`; a broken pipe is [`Flow::Closed`], any other failure an error.
pub fn write_all(out: &mut impl Write, bytes: &[u8]) -> CliResult<Flow> {
    match out.write_all(bytes) {
        Ok(()) => Ok(Flow::More),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Flow::Closed),
        Err(e) => Err(crate::exit::CliError::failure(format!("cannot write the output: {e}"))),
    }
}

/// Writes `line` and a line break.
pub fn line(out: &mut impl Write, line: &[u8]) -> CliResult<Flow> {
    if write_all(out, line)? == Flow::Closed {
        return Ok(Flow::Closed);
    }
    write_all(out, b"\n")
}

/// Flushes `out`; a broken pipe is not an error.
pub fn flush(out: &mut impl Write) -> CliResult {
    match out.flush() {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(crate::exit::CliError::failure(format!("cannot write the output: {e}"))),
    }
}

/// A compact JSON object with `"_tenant_id": id` first (other values are left as they are).
pub fn with_tenant_id(record: &[u8], tenant_id: i64) -> Vec<u8> {
    match record.strip_prefix(b"{") {
        Some(rest) => {
            let mut out = Vec::with_capacity(record.len() + 32);
            out.extend_from_slice(format!("{{\"_tenant_id\":{tenant_id}").as_bytes());
            if rest.first() != Some(&b'}') {
                out.push(b',');
            }
            out.extend_from_slice(rest);
            out
        }
        None => record.to_vec(),
    }
}
