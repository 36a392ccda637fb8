//! Record streams (`Records`, `AsyncRecords`): the records of `paginate()` and `export()`, page
//! after page, and the export checkpoint.
//!
//! Both wrap one engine `RecordStream`, which hands every record out once whatever the number of
//! threads or coroutines reading it, and keeps `continue_from`. This side only decodes: a page's
//! body becomes Python objects once, when its first record is taken.

use std::sync::{Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::{PyStopAsyncIteration, PyStopIteration};
use pyo3::prelude::*;
use pyo3::types::PyList;
use servicetitan::{Bytes, RawRecord, RecordStream, Taken};

use crate::convert::page_data_to_py;
use crate::errors::{configuration_error, to_py};
use crate::runtime::{to_asyncio, wait, ForkLeaked};

// ---------------------------------------------------------------------------------------------
// Record iteration (shared by the blocking and asyncio streams)

/// What a stream made before a fork cannot be used after it.
fn forked_stream_error() -> PyErr {
    configuration_error("stream", "this stream was started before the process forked; start a new one in this process")
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the engine handed out, decoded.
enum Next<'py> {
    Record(Bound<'py, PyAny>),
    End,
    /// Nothing buffered: a page must be fetched first (`fill`).
    Empty,
}

/// The engine's stream and the decoded page its current records come from.
struct Core {
    stream: ForkLeaked<RecordStream<RawRecord>>,
    /// The page being handed out, as a list, with its body: every record of a page shares one
    /// body, and holding it keeps its address from being reused by another page.
    page: Mutex<Option<(Bytes, Py<PyList>)>>,
}

fn same_page(a: &Bytes, b: &Bytes) -> bool {
    a.as_ptr() == b.as_ptr() && a.len() == b.len()
}

impl Core {
    fn new(stream: RecordStream<RawRecord>) -> Self {
        Core { stream: ForkLeaked::new(stream), page: Mutex::new(None) }
    }

    fn stream(&self) -> PyResult<&RecordStream<RawRecord>> {
        self.stream.get().ok_or_else(forked_stream_error)
    }

    /// The next record if one is buffered, taken from the engine and decoded in one step (the
    /// GIL held throughout), so that a record taken is a record returned.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Next<'py>> {
        match self.stream()?.try_take() {
            Taken::Record(raw) => self.decode(py, raw).map(Next::Record),
            Taken::Error(e) => Err(to_py(e)),
            Taken::End => Ok(Next::End),
            Taken::Empty => Ok(Next::Empty),
        }
    }

    fn decode<'py>(&self, py: Python<'py>, raw: RawRecord) -> PyResult<Bound<'py, PyAny>> {
        // No Python code runs while the lock is held (a decref could run a finaliser that waits
        // on another thread holding it): lists are cloned and dropped outside.
        let cached = lock(&self.page)
            .as_ref()
            .filter(|(body, _)| same_page(body, &raw.page))
            .map(|(_, list)| list.clone_ref(py));
        let list = match cached {
            Some(list) => list.into_bound(py),
            None => {
                let list = page_data_to_py(py, &raw)?;
                let previous = lock(&self.page).replace((raw.page.clone(), list.clone().unbind()));
                drop(previous);
                list
            }
        };
        let record = list.get_item(raw.index)?;
        if raw.index + 1 == raw.page_len {
            // Handed out whole: drop our reference so consumed records can be freed.
            let mut page = lock(&self.page);
            let done = page.take_if(|(body, _)| same_page(body, &raw.page));
            drop(page);
            drop(done);
        }
        Ok(record)
    }

    fn continue_from(&self) -> PyResult<Option<String>> {
        Ok(self.stream()?.continue_from())
    }
}

/// The records of `tenant.paginate(...)` or `tenant.export(...)`: iterate it, from one thread
/// or several (each record goes to one of them); for exports, `continue_from` is the checkpoint
/// to save.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct Records {
    core: Core,
}

impl Records {
    pub(crate) fn new(stream: RecordStream<RawRecord>) -> Self {
        Records { core: Core::new(stream) }
    }
}

#[pymethods]
impl Records {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        loop {
            match self.core.take(py)? {
                Next::Record(record) => return Ok(Some(record)),
                Next::End => return Ok(None),
                Next::Empty => {
                    let stream = self.core.stream()?;
                    wait(py, stream.fill())?;
                }
            }
        }
    }

    /// For exports: the `continueFrom` of the last page fully handed out (or the `since` the
    /// feed started from). `None` for lists.
    #[getter]
    fn continue_from(&self) -> PyResult<Option<String>> {
        self.core.continue_from()
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

/// The records of `tenant.paginate(...)` or `tenant.export(...)` on an `AsyncTenant`: use
/// `async for`, from one coroutine or several (each record goes to one of them); for exports,
/// `continue_from` is the checkpoint to save.
#[pyclass(module = "servicetitan._native", frozen)]
pub(crate) struct AsyncRecords {
    core: Core,
}

impl AsyncRecords {
    pub(crate) fn new(stream: RecordStream<RawRecord>) -> Self {
        AsyncRecords { core: Core::new(stream) }
    }
}

/// `__anext__` when nothing is buffered: wait for a page, then take, in a coroutine of the
/// caller's task. The awaitable only waits (the engine buffers the page it brings, so asyncio
/// cancelling at any moment loses nothing); the record is taken after the await, with no await
/// between taking and returning it.
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
        match self.core.take(py)? {
            Next::Record(record) => Ok(Some(record)),
            Next::End => Err(PyStopAsyncIteration::new_err(())),
            Next::Empty => Ok(None),
        }
    }

    /// Waits until a record (or the end) is buffered (an awaitable of `None`).
    fn _fill<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stream = self.core.stream()?.clone();
        to_asyncio(py, async move {
            stream.fill().await;
            Ok(())
        })
    }

    /// For exports: the `continueFrom` of the last page fully handed out (or the `since` the
    /// feed started from). `None` for lists.
    #[getter]
    fn continue_from(&self) -> PyResult<Option<String>> {
        self.core.continue_from()
    }
}
