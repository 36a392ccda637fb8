//! Numeric arguments, checked under the caller's name (`#[pyo3(from_py_with = …)]`): left to
//! pyo3, `max_attempts=-1` or `rate_limit_calls=2**70` raise a bare `OverflowError` that names
//! no argument. Out of range, or not a number at all, is a `ConfigurationError` saying the range.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};

use crate::errors::configuration_error;
use crate::values::a_type;

/// A whole number in `min..=max` (anything with `__index__`); `None` stays `None`.
fn whole(obj: &Bound<'_, PyAny>, name: &str, min: i64, max: i64) -> PyResult<Option<i64>> {
    if obj.is_none() {
        return Ok(None);
    }
    let refuse = || {
        configuration_error(
            name,
            format!("invalid {name}: expected a whole number from {min} to {max}, got {}", shown(obj)),
        )
    };
    // A bool is an int to Python, but `max_attempts=True` is a mistake.
    if obj.cast::<PyBool>().is_ok() {
        return Err(refuse());
    }
    match obj.extract::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
        _ => Err(refuse()),
    }
}

/// A number (int or float) as `f64`; `None` stays `None`.
fn number(obj: &Bound<'_, PyAny>, name: &str, what: &str) -> PyResult<Option<f64>> {
    if obj.is_none() {
        return Ok(None);
    }
    if obj.cast::<PyBool>().is_err() {
        if let Ok(v) = obj.extract::<f64>() {
            return Ok(Some(v));
        }
    }
    Err(configuration_error(name, format!("invalid {name}: expected {what}, got {}", shown(obj))))
}

/// The value as shown in a refusal: an int's digits (by `int`'s own repr, cut short), the type
/// of anything else (its repr could be anything, a secret included).
fn shown(obj: &Bound<'_, PyAny>) -> String {
    if obj.cast::<PyBool>().is_err() && obj.cast::<PyInt>().is_ok() {
        let py = obj.py();
        if let Ok(text) = py.get_type::<PyInt>().call_method1("__repr__", (obj,)).and_then(|r| r.extract::<String>()) {
            if text.len() <= 40 {
                return text;
            }
            return format!("an integer of {} digits", text.trim_start_matches('-').len());
        }
        return "an integer too large to print".to_owned();
    }
    if let Ok(f) = obj.extract::<f64>() {
        if obj.cast::<PyBool>().is_err() {
            return format!("{f:?}");
        }
    }
    a_type(obj)
}

const U32_MAX: i64 = u32::MAX as i64;

macro_rules! whole_args {
    ($($fn_name:ident: $t:ty, $min:expr, $max:expr;)*) => {$(
        pub(crate) fn $fn_name(obj: &Bound<'_, PyAny>) -> PyResult<Option<$t>> {
            // In range, so the conversion cannot fail.
            Ok(whole(obj, stringify!($fn_name), $min, $max)?.map(|v| <$t>::try_from(v).unwrap_or_default()))
        }
    )*};
}

macro_rules! number_args {
    ($($fn_name:ident: $what:literal;)*) => {$(
        pub(crate) fn $fn_name(obj: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
            number(obj, stringify!($fn_name), $what)
        }
    )*};
}

whole_args! {
    rate_limit_calls: u32, 0, U32_MAX;
    report_rate_limit_calls: u32, 0, U32_MAX;
    max_attempts: u32, 0, U32_MAX;
    page_size: u32, 1, U32_MAX;
    tenant_id: i64, 1, i64::MAX;
}

number_args! {
    rate_limit_period: "a number of seconds";
    rate_limit_margin: "a number of seconds";
    report_rate_limit_period: "a number of seconds";
    backoff_base: "a number of seconds";
    backoff_max: "a number of seconds";
    timeout: "a number of seconds";
    connect_timeout: "a number of seconds";
    attempt_timeout: "a number of seconds";
    max_retry_after: "a number of seconds";
    redis_fallback_share: "a number from 0 to 1";
}

/// `report_id`, a required argument.
pub(crate) fn report_id(obj: &Bound<'_, PyAny>) -> PyResult<i64> {
    let id = whole(obj, "report_id", 1, i64::MAX)?;
    id.ok_or_else(|| {
        configuration_error(
            "report_id",
            format!("invalid report_id: expected a whole number from 1 to {}, got None", i64::MAX),
        )
    })
}
