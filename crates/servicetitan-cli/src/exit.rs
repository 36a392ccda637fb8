//! Exit codes, and the one error type every command returns.

use std::fmt;

use servicetitan::ErrorCode;

/// Success.
pub const OK: i32 = 0;
/// The work failed (the API refused it, the network failed, a file could not be written).
pub const FAILURE: i32 = 1;
/// Bad usage or configuration: nothing was sent (clap's usage errors exit with 2 as well).
pub const CONFIGURATION: i32 = 2;
/// The credentials or the app key were refused, or a scope is missing (401/403).
pub const AUTHENTICATION: i32 = 3;
/// Some streams or tenants failed while others succeeded.
pub const PARTIAL: i32 = 4;

/// A failure of a command: one line for stderr, and the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// The exit code (one of the constants above).
    pub code: i32,
    /// What went wrong, in one line, without a secret.
    pub message: String,
}

impl CliError {
    /// Bad usage or configuration.
    pub fn configuration(message: impl Into<String>) -> Self {
        CliError { code: CONFIGURATION, message: message.into() }
    }

    /// Any other failure.
    pub fn failure(message: impl Into<String>) -> Self {
        CliError { code: FAILURE, message: message.into() }
    }

    /// Some of the work failed (the failures were reported as they happened).
    pub fn partial(message: impl Into<String>) -> Self {
        CliError { code: PARTIAL, message: message.into() }
    }
}

/// The exit code an engine error maps to.
pub fn code_of(error: &servicetitan::Error) -> i32 {
    match error.code() {
        ErrorCode::Configuration => CONFIGURATION,
        ErrorCode::Authentication | ErrorCode::PermissionDenied => AUTHENTICATION,
        _ => FAILURE,
    }
}

impl From<servicetitan::Error> for CliError {
    fn from(error: servicetitan::Error) -> Self {
        // The engine's messages never hold a secret; keep them on one line.
        let message = error.to_string().replace(['\n', '\r'], " ");
        CliError { code: code_of(&error), message }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::failure(error.to_string())
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// What a command returns.
pub type CliResult<T = ()> = Result<T, CliError>;
