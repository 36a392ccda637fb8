//! The `servicetitan` command of the npm package (`npx servicetitan`): the command line of the
//! `servicetitan-cli` crate, the same one the Rust binary and the Python console script run.
// napi registers the function for the addon only; a test build sees nothing call it.
#![cfg_attr(test, allow(dead_code))]

use napi::bindgen_prelude::Object;
use napi::Env;
use napi_derive::napi;

type ExitCode = Box<dyn FnOnce(Env) -> napi::Result<i32> + Send>;

/// Runs the command line `argv` (the program name first); it prints to the process's standard
/// output and error itself. Resolves with the exit code.
///
/// The command runs on a thread of its own: it builds its own async runtime, which must not
/// start inside the addon's, and a thread of libuv's pool would hold up `process.exit` (on
/// Ctrl-C) until the command ended.
#[napi(js_name = "runCli", ts_return_type = "Promise<number>")]
pub fn run_cli<'env>(env: &'env Env, argv: Vec<String>) -> napi::Result<Object<'env>> {
    let (deferred, promise) = env.create_deferred::<i32, ExitCode>()?;
    std::thread::Builder::new()
        .name("servicetitan-cli".into())
        .spawn(move || {
            let code = servicetitan_cli::run(argv);
            deferred.resolve(Box::new(move |_env| Ok(code)));
        })
        .map_err(|e| napi::Error::from_reason(format!("cannot start the command's thread: {e}")))?;
    Ok(promise)
}
