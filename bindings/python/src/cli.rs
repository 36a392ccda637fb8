//! The `servicetitan` console script: the command line of the `servicetitan-cli` crate, the
//! same one the Rust binary and `npx servicetitan` run.

use pyo3::prelude::*;

/// Runs the command line `argv` (the program name first) with the GIL released, and returns
/// its exit code. The command prints to the process's standard output and error itself.
#[pyfunction]
pub fn run_cli(py: Python<'_>, argv: Vec<String>) -> i32 {
    py.detach(move || servicetitan_cli::run(argv))
}
