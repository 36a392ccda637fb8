//! Record streams (`Records`, `AsyncRecords`): the records of `paginate()` and `export()`,
//! page after page, and the export checkpoint.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyList;
use servicetitan::{PageStream, RawPage};

use crate::convert::page_data_to_py;
use crate::errors::{configuration_error, to_py};
use crate::runtime::{to_asyncio, wait, ForkLeaked};

// ---------------------------------------------------------------------------------------------
// Record iteration (shared by the blocking and asyncio streams)

/// The page being handed out, and the export checkpoint: the `continueFrom` of the last page
/// whose records have all been handed out (the engine's `RecordStream` rule).
#[derive(Default)]
struct Buffer {
    page: Option<Py<PyList>>,
    next: usize,
    page_checkpoint: Option<String>,
    checkpoint: Option<String>,
    done: bool,
    /// A fetched page whose `__anext__` was cancelled before it reached Python: handed out by the
    /// next `__anext__`, so no page is lost and the checkpoint never skips one.
    stashed: Option<Option<servicetitan::Result<RawPage>>>,
}

impl Buffer {
    fn pop<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyAny>> {
        let page = self.page.as_ref()?.bind(py);
        let record = page.get_item(self.next).ok()?;
        self.next += 1;
        if self.next >= page.len() {
            // Handed out whole: drop our reference so consumed records can be freed.
            self.page = None;
            if let Some(c) = self.page_checkpoint.take() {
                self.checkpoint = Some(c);
            }
        }
        Some(record)
    }

    fn load(&mut self, py: Python<'_>, page: RawPage) -> PyResult<()> {
        let records = page_data_to_py(py, &page.body)?;
        if records.is_empty() {
            if page.continue_from.is_some() {
                self.checkpoint = page.continue_from;
            }
        } else {
            self.page = Some(records.unbind());
            self.next = 0;
            self.page_checkpoint = page.continue_from;
        }
        Ok(())
    }
}

/// What a page stream made before a fork cannot be used after it.
fn forked_stream_error() -> PyErr {
    configuration_error("stream", "this stream was started before the process forked; start a new one in this process")
}

/// The records of `tenant.paginate(...)` or `tenant.export(...)`: iterate it; for exports,
/// `continue_from` is the checkpoint to save.
#[pyclass(module = "servicetitan._native")]
pub(crate) struct Records {
    pages: ForkLeaked<PageStream<RawPage>>,
    buffer: Buffer,
}

impl Records {
    pub(crate) fn new(pages: PageStream<RawPage>, since: Option<String>) -> Self {
        Records { pages: ForkLeaked::new(pages), buffer: Buffer { checkpoint: since, ..Buffer::default() } }
    }
}

#[pymethods]
impl Records {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        loop {
            if let Some(record) = self.buffer.pop(py) {
                return Ok(Some(record));
            }
            if self.buffer.done {
                return Ok(None);
            }
            let pages = self.pages.get_mut().ok_or_else(forked_stream_error)?;
            let next = wait(py, futures::StreamExt::next(pages))?;
            match next {
                None => self.buffer.done = true,
                Some(Err(e)) => {
                    self.buffer.done = true;
                    return Err(to_py(e));
                }
                Some(Ok(page)) => self.buffer.load(py, page)?,
            }
        }
    }

    /// For exports: the `continueFrom` of the last page fully handed out (or the `since` the
    /// feed started from). `None` for lists.
    #[getter]
    fn continue_from(&self) -> Option<String> {
        self.buffer.checkpoint.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// asyncio

/// An awaitable that is already complete: `__anext__` returns one while records are buffered,
/// so iterating a page costs no trip through the event loop.
#[pyclass(module = "servicetitan._native")]
pub(crate) struct Ready {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<()> {
        Err(PyStopIteration::new_err((self.value.take(),)))
    }
}

type SharedPages = Arc<tokio::sync::Mutex<ForkLeaked<PageStream<RawPage>>>>;

/// The records of `tenant.paginate(...)` or `tenant.export(...)` on an `AsyncTenant`: use
/// `async for`; for exports, `continue_from` is the checkpoint to save.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct AsyncRecords {
    pages: SharedPages,
    buffer: Arc<Mutex<Buffer>>,
}

impl AsyncRecords {
    pub(crate) fn new(pages: PageStream<RawPage>, since: Option<String>) -> Self {
        AsyncRecords {
            pages: Arc::new(tokio::sync::Mutex::new(ForkLeaked::new(pages))),
            buffer: Arc::new(Mutex::new(Buffer { checkpoint: since, ..Buffer::default() })),
        }
    }
}

/// The next page, arriving in Python: loaded into the buffer with the GIL held, nothing handed
/// out. A record is popped only by the coroutine that awaited this (see [`NEXT_AFTER_FILL`]), so
/// asyncio cancelling at any moment loses nothing: a page not yet converted is stashed, one
/// converted stays in the buffer.
struct Arrival {
    /// The stream's next item (`None`: the end); taken when it reaches Python.
    page: Option<Option<servicetitan::Result<RawPage>>>,
    buffer: Arc<Mutex<Buffer>>,
    /// The stream, held until the page is in the buffer or stashed, so that the next fill cannot
    /// overtake it and pages always reach the caller in order.
    _stream: tokio::sync::OwnedMutexGuard<ForkLeaked<PageStream<RawPage>>>,
}

impl Drop for Arrival {
    fn drop(&mut self) {
        // Never converted: the asyncio task was cancelled after the page was fetched. The next
        // fill (which waits for the stream) loads it first.
        if let Some(page) = self.page.take() {
            self.buffer.lock().unwrap_or_else(|p| p.into_inner()).stashed = Some(page);
        }
    }
}

impl<'py> IntoPyObject<'py> for Arrival {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let page = self.page.take();
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        match page.flatten() {
            None => buffer.done = true,
            Some(Err(e)) => {
                buffer.done = true;
                return Err(to_py(e));
            }
            Some(Ok(raw)) => buffer.load(py, raw)?,
        }
        Ok(py.None().into_bound(py))
    }
}

/// Loads the next page into the buffer, unless records (or the end) are already there.
fn fill<'py>(py: Python<'py>, pages: SharedPages, buffer: Arc<Mutex<Buffer>>) -> PyResult<Bound<'py, PyAny>> {
    to_asyncio(py, async move {
        let mut guard = pages.lock_owned().await;
        // An earlier fill, cancelled after its page arrived, may have loaded or stashed one.
        let (loaded, stashed) = {
            let mut b = buffer.lock().unwrap_or_else(|p| p.into_inner());
            let loaded = b.page.is_some() || b.done;
            (loaded, if loaded { None } else { b.stashed.take() })
        };
        let page = match (loaded, stashed) {
            (true, _) => None,
            (false, Some(page)) => Some(page),
            (false, None) => {
                let Some(stream) = guard.get_mut() else {
                    return Err(forked_stream_error());
                };
                Some(futures::StreamExt::next(stream).await)
            }
        };
        Ok(Arrival { page, buffer, _stream: guard })
    })
}

/// `__anext__` when the buffer is empty: fill, then pop, in a coroutine of the caller's task,
/// so that a record is only ever taken by the code that returns it.
const NEXT_AFTER_FILL: &std::ffi::CStr = c"
async def next_after_fill(records):
    while True:
        await records._fill()
        record = records._pop()
        if record is not None:
            return record
";

static NEXT_AFTER_FILL_FN: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

#[pymethods]
impl AsyncRecords {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        if let Some(record) = slf.get()._pop(py)? {
            return Ok(Bound::new(py, Ready { value: Some(record.unbind()) })?.into_any());
        }
        let next = NEXT_AFTER_FILL_FN.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            let globals = pyo3::types::PyDict::new(py);
            py.run(NEXT_AFTER_FILL, Some(&globals), None)?;
            Ok(globals.get_item("next_after_fill")?.expect("defined above").unbind())
        })?;
        next.bind(py).call1((slf,))
    }

    /// The next buffered record; `None` if a page must be loaded first (`_fill`); the end of
    /// iteration raised once the stream is done.
    fn _pop<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(record) = buffer.pop(py) {
            return Ok(Some(record));
        }
        if buffer.done {
            return Err(PyStopAsyncIteration::new_err(()));
        }
        Ok(None)
    }

    /// Loads the next page into the buffer (an awaitable of `None`).
    fn _fill<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        fill(py, self.pages.clone(), self.buffer.clone())
    }

    /// For exports: the `continueFrom` of the last page fully handed out (or the `since` the
    /// feed started from). `None` for lists.
    #[getter]
    fn continue_from(&self) -> Option<String> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner()).checkpoint.clone()
    }
}
