//! The tokio runtime behind every call, made anew in a forked child, and the two ways Python
//! waits on it: blocking (GIL released, Ctrl-C honoured) and asyncio (via pyo3-async-runtimes).
//!
//! Why fork needs care: after `fork()` only the forking thread exists in the child. The parent's
//! runtime has no workers there, so anything driven by it hangs; and its I/O driver shares the
//! parent's epoll instance, so even *dropping* a socket registered with it would deregister the
//! parent's socket. The child therefore gets a fresh runtime, and every engine object made before
//! the fork is leaked in the child instead of dropped ([`PerProcess`]).

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::runtime::Runtime;

/// Bumped in the child after every fork: objects stamped with an older value belong to a parent.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// The current process's runtime; null until first use and again right after a fork. Swapped
/// lock-free, because a lock held by another thread at fork time would stay locked in the child.
static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());
/// The thread Python delivers signals on; only there is waking up to check them useful.
static MAIN_THREAD: OnceLock<ThreadId> = OnceLock::new();

/// Tasks of the asyncio bridge still running, counted until their very end: the bridge calls into
/// Python (`call_soon_threadsafe`, then drops the arguments) *after* the awaited result is
/// delivered, so the interpreter could otherwise start finalizing while a runtime thread is still
/// inside Python, and crash there.
static BRIDGE_TASKS: AtomicUsize = AtomicUsize::new(0);
/// Set at interpreter exit: from then on runtime threads must not enter Python.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Wakes bridge tasks at interpreter exit, so that those still waiting (a call cancelled by
/// asyncio but not yet finished, say) are dropped instead of calling into Python later.
static EXIT_NOTIFY: tokio::sync::Notify = tokio::sync::Notify::const_new();
/// The longest the exit hook waits for bridge tasks that are inside Python to leave it.
const EXIT_DRAIN: Duration = Duration::from_secs(2);

/// How often a blocked call on the main thread looks for Ctrl-C (the issue asks for < 1 s).
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// The runtime of this process, built on first use.
pub(crate) fn runtime() -> &'static Runtime {
    let current = RUNTIME.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: runtimes are leaked, never freed, so a pointer once published stays valid.
        return unsafe { &*current };
    }
    let fresh = tokio::runtime::Builder::new_multi_thread()
        .thread_name("servicetitan-rt")
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime (out of threads or file descriptors?)");
    let fresh = Box::into_raw(Box::new(fresh));
    match RUNTIME.compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: just published from a leaked Box.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // Another thread built one first; ours never ran a task.
            // SAFETY: `fresh` was never published, so this thread owns it.
            unsafe { Box::from_raw(fresh) }.shutdown_background();
            // SAFETY: as above, published runtimes are never freed.
            unsafe { &*winner }
        }
    }
}

/// Called in the child right after `os.fork()` (registered with `os.register_at_fork`).
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    // The parent's runtime is forgotten, not dropped: its threads do not exist here.
    RUNTIME.store(std::ptr::null_mut(), Ordering::Release);
    GENERATION.fetch_add(1, Ordering::AcqRel);
    crate::logging::after_fork_in_child();
}

pub(crate) fn set_main_thread(py: Python<'_>) -> PyResult<()> {
    let threading = py.import("threading")?;
    if threading.call_method0("current_thread")?.is(&threading.call_method0("main_thread")?) {
        let _ = MAIN_THREAD.set(std::thread::current().id());
    }
    Ok(())
}

/// Runs `fut` to completion with the GIL released. On Python's main thread it wakes every
/// [`SIGNAL_CHECK_INTERVAL`] to run signal handlers, so Ctrl-C raises `KeyboardInterrupt` and
/// drops (cancels) the call.
pub(crate) fn wait<F, T>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        // `block_on` would panic: this thread drives the runtime (user code called back from
        // it, such as a handler of the `servicetitan` logger, made a blocking call).
        return Err(crate::errors::configuration_error(
            "call",
            "a blocking call cannot be made from the client's own runtime threads (a handler of the \
             servicetitan logger, say): hand the work to another thread, or use AsyncClient",
        ));
    }
    let rt = runtime();
    let on_main_thread = MAIN_THREAD.get() == Some(&std::thread::current().id());
    let fut = crate::panics::catch_async(fut);
    // A panic of `block_on` itself is caught too.
    let outcome = py.detach(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            if !on_main_thread {
                return PyResult::Ok(rt.block_on(fut));
            }
            rt.block_on(async move {
                let mut fut = std::pin::pin!(fut);
                loop {
                    tokio::select! {
                        biased;
                        out = &mut fut => return Ok(out),
                        _ = tokio::time::sleep(SIGNAL_CHECK_INTERVAL) => {
                            Python::attach(|py| py.check_signals())?;
                        }
                    }
                }
            })
        }))
        .unwrap_or_else(|payload| Ok(Err(crate::panics::message(&*payload))))
    });
    outcome?.map_err(|message| crate::errors::internal_error(&message))
}

/// An engine object that belongs to the process that made it: after a fork the child makes its
/// own with `make` and leaks the parent's (see the module docs for why it must not be dropped).
pub(crate) struct PerProcess<T: Clone> {
    slot: Mutex<Stamped<T>>,
}

struct Stamped<T> {
    generation: u64,
    value: ManuallyDrop<T>,
}

impl<T: Clone> PerProcess<T> {
    pub(crate) fn new(value: T) -> Self {
        PerProcess { slot: Mutex::new(Stamped { generation: generation(), value: ManuallyDrop::new(value) }) }
    }

    /// This process's value (a cheap clone: engine handles are `Arc`s).
    ///
    /// Callers hold the GIL, so the lock is never held while another thread forks (`os.fork`
    /// takes the GIL too) and cannot be found locked in the child.
    pub(crate) fn get(&self, make: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = generation();
        if slot.generation != now {
            // The old value is deliberately not dropped.
            slot.value = ManuallyDrop::new(make()?);
            slot.generation = now;
        }
        Ok((*slot.value).clone())
    }
}

impl<T: Clone> Drop for PerProcess<T> {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
        if slot.generation == generation() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut slot.value) };
        }
    }
}

/// A value that must not be dropped in a forked child (where its runtime does not exist), such as
/// a page stream whose prefetch task lives on the parent's runtime.
pub(crate) struct ForkLeaked<T> {
    generation: u64,
    value: ManuallyDrop<T>,
}

impl<T> ForkLeaked<T> {
    pub(crate) fn new(value: T) -> Self {
        ForkLeaked { generation: generation(), value: ManuallyDrop::new(value) }
    }

    /// The value, unless it was made before a fork (then it is unusable here).
    pub(crate) fn get_mut(&mut self) -> Option<&mut T> {
        (self.generation == generation()).then_some(&mut *self.value)
    }

    /// The value, unless it was made before a fork.
    pub(crate) fn get(&self) -> Option<&T> {
        (self.generation == generation()).then_some(&*self.value)
    }
}

impl<T> Drop for ForkLeaked<T> {
    fn drop(&mut self) {
        if self.generation == generation() {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.value) };
        }
    }
}

/// pyo3-async-runtimes over [`runtime`], so asyncio calls also get a fresh runtime after a fork
/// (its own tokio runtime is a one-time global).
pub(crate) struct AsyncRuntime;

tokio::task_local! {
    static TASK_LOCALS: std::cell::OnceCell<pyo3_async_runtimes::TaskLocals>;
}

/// Counts one bridge task from its spawn to the end of its last drop.
struct BridgeTask;

impl BridgeTask {
    fn start() -> Self {
        BRIDGE_TASKS.fetch_add(1, Ordering::AcqRel);
        BridgeTask
    }
}

impl Drop for BridgeTask {
    fn drop(&mut self) {
        BRIDGE_TASKS.fetch_sub(1, Ordering::AcqRel);
    }
}

impl pyo3_async_runtimes::generic::Runtime for AsyncRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle = tokio::task::JoinHandle<()>;

    fn spawn<F>(fut: F) -> Self::JoinHandle
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = BridgeTask::start();
        runtime().spawn(async move {
            let exit = EXIT_NOTIFY.notified();
            let mut exit = std::pin::pin!(exit);
            exit.as_mut().enable();
            if python_available() {
                tokio::select! {
                    _ = fut => {}
                    _ = exit => {}
                }
            }
            drop(task);
        })
    }

    fn spawn_blocking<F>(f: F) -> Self::JoinHandle
    where
        F: FnOnce() + Send + 'static,
    {
        let task = BridgeTask::start();
        runtime().spawn_blocking(move || {
            f();
            drop(task);
        })
    }
}

/// Whether runtime threads may still call into Python (not once the interpreter is exiting).
pub(crate) fn python_available() -> bool {
    !EXITING.load(Ordering::Acquire)
}

/// Registered with `atexit`: lets the asyncio bridge's tasks leave Python before the interpreter
/// finalizes, and keeps runtime threads out of it from then on.
#[pyfunction]
pub(crate) fn _at_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    EXIT_NOTIFY.notify_waiters();
    py.detach(|| {
        let started = std::time::Instant::now();
        while BRIDGE_TASKS.load(Ordering::Acquire) > 0 && started.elapsed() < EXIT_DRAIN {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

impl pyo3_async_runtimes::generic::ContextExt for AsyncRuntime {
    fn scope<F, R>(locals: pyo3_async_runtimes::TaskLocals, fut: F) -> Pin<Box<dyn Future<Output = R> + Send>>
    where
        F: Future<Output = R> + Send + 'static,
    {
        let cell = std::cell::OnceCell::new();
        let _ = cell.set(locals);
        Box::pin(TASK_LOCALS.scope(cell, fut))
    }

    fn get_task_locals() -> Option<pyo3_async_runtimes::TaskLocals> {
        TASK_LOCALS.try_with(|c| c.get().cloned()).unwrap_or_default()
    }
}

/// Wraps `fut` in an asyncio future of the running loop; cancelling that future drops `fut`. A
/// panic while it runs, or while its result is converted, resolves it with an `InternalError`.
pub(crate) fn to_asyncio<'py, F, T>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    use crate::panics::Guarded;
    let guarded = async move {
        match crate::panics::catch_async(fut).await {
            Ok(result) => result.map(Guarded::Done),
            Err(message) => Ok(Guarded::Panicked(message)),
        }
    };
    pyo3_async_runtimes::generic::future_into_py::<AsyncRuntime, _, Guarded<T>>(py, guarded)
}
