//! Where records go: files committed atomically (a temporary name in the same directory,
//! fsynced, renamed, the directory fsynced), or standard output shared by every task in whole
//! lines.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The prefix and suffix of a file being written: `.NAME.partial` next to `NAME`. A run killed
/// while writing leaves one behind; the next run that writes `NAME` removes it.
fn temporary_name(final_path: &Path) -> PathBuf {
    let name = final_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    final_path.with_file_name(format!(".{name}.partial"))
}

/// A file that appears under its name only once it is whole and on disk.
pub struct AtomicFile {
    final_path: PathBuf,
    temporary: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing what will become `final_path` (a leftover of a killed run is replaced).
    pub fn create(final_path: &Path) -> io::Result<AtomicFile> {
        let temporary = temporary_name(final_path);
        let file = File::create(&temporary)?;
        Ok(AtomicFile {
            final_path: final_path.to_path_buf(),
            temporary,
            file: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// Flushes, fsyncs, renames to the final name and fsyncs the directory: after this returns,
    /// the file is there whole even if the machine loses power.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.temporary, &self.final_path)?;
        sync_directory(&self.final_path)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("not committed").write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.as_mut().expect("not committed").write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("not committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Not committed: the records are not durable, so the file must not appear.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// fsyncs the directory holding `path`, so that a rename in it survives a crash.
fn sync_directory(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, directory fsync).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// Standard output, shared by every task of a run: each `write` goes out whole under the lock,
/// so writers that hand it whole lines never interleave.
#[derive(Clone)]
pub struct SharedStdout(Arc<Mutex<io::Stdout>>);

impl SharedStdout {
    /// The process's standard output.
    pub fn new() -> SharedStdout {
        SharedStdout(Arc::new(Mutex::new(io::stdout())))
    }
}

impl Write for SharedStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let stdout = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut stdout = stdout.lock();
        stdout.write_all(buf)?;
        stdout.flush()
    }

    fn flush(&mut self) -> io::Result<()> {
        let stdout = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut stdout = stdout.lock();
        stdout.flush()
    }
}

/// Where one task's records go.
pub enum Destination {
    /// A file, committed at the end.
    File(AtomicFile),
    /// Standard output.
    Stdout(SharedStdout),
}

impl Write for Destination {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Destination::File(f) => f.write(buf),
            Destination::Stdout(s) => s.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Destination::File(f) => f.write_all(buf),
            Destination::Stdout(s) => s.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Destination::File(f) => f.flush(),
            Destination::Stdout(s) => s.flush(),
        }
    }
}

impl Destination {
    /// Makes what was written durable: a file is committed, stdout is flushed.
    pub fn commit(self) -> io::Result<()> {
        match self {
            Destination::File(f) => f.commit(),
            Destination::Stdout(mut s) => s.flush(),
        }
    }
}
