//! User values crossing into the engine: `json=` bodies, `params=`, report `parameters=` and
//! sandbox options. A refusal is a `ConfigurationError` naming the argument and the path to the
//! value at fault (`json.items[3].price: …`), raised before anything is sent.
//!
//! The walk recurses, so it stops at [`MAX_DEPTH`] and at a container met again on its own path:
//! without that, a value that contains itself, or one nested a few thousand deep, overflows the
//! stack and kills the interpreter. Only the C implementations of Python's types are called, and
//! dicts are read from a snapshot, so no user code runs mid-walk except a `tzinfo`'s.

use pyo3::exceptions::{PyException, PyMemoryError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use serde_json::Value;

use crate::errors::configuration_error;

/// The deepest nesting of dicts and lists a value may have (the value itself is level 1).
pub(crate) const MAX_DEPTH: usize = 128;

/// Keys are shown up to this many characters in a path (a key can be any string).
const MAX_KEY_CHARS: usize = 64;

/// A `json=` body: dicts (str keys), lists, tuples, str, int (64-bit), float (finite), bool,
/// None, and dates, datetimes and times (sent as ISO 8601, the format ServiceTitan expects).
pub(crate) fn json_body(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    json_argument(obj, "json")
}

/// Any other JSON argument, its refusals naming `argument` (the same rules as a `json=` body).
pub(crate) fn json_argument(obj: &Bound<'_, PyAny>, argument: &str) -> PyResult<Value> {
    crate::panics::catch(|| Walk::new(argument, Vec::new()).value(obj))
}

/// Report `parameters=`: a dict of names to JSON values, in order.
pub(crate) fn report_parameters(parameters: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, Value)>> {
    let Some(parameters) = parameters.filter(|p| !p.is_none()) else { return Ok(Vec::new()) };
    crate::panics::catch(|| {
        let dict = parameters.cast::<PyDict>().map_err(|_| {
            configuration_error(
                "parameters",
                format!("parameters: expected a dict of report parameters, got {}", a_type(parameters)),
            )
        })?;
        let mut out = Vec::with_capacity(dict.len());
        for (k, v) in items(dict)? {
            let name = key_text(&Walk::new("parameters", Vec::new()), &k)?;
            let value = Walk::new("parameters", vec![Step::Key(name.clone())]).value(&v)?;
            out.push((name, value));
        }
        Ok(out)
    })
}

/// Keyword options (the sandbox's settings, a fault) as a JSON object; each option is named by
/// its own keyword in a refusal.
pub(crate) fn kwargs_to_value(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Value> {
    let Some(kwargs) = kwargs else { return Ok(Value::Object(serde_json::Map::new())) };
    crate::panics::catch(|| {
        let mut map = serde_json::Map::with_capacity(kwargs.len());
        for (k, v) in items(kwargs)? {
            // Keyword names are always str.
            let name: String = k.extract()?;
            let value = Walk::new(&name, Vec::new()).value(&v)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    })
}

/// Query parameters (`params=`): a mapping of names to str, int, float, bool (`true`/`false`),
/// date/datetime (ISO 8601) or a list of those (comma-separated, as ServiceTitan's `ids` takes).
/// `None` values are left out.
pub(crate) fn params_to_pairs(params: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, String)>> {
    let Some(params) = params.filter(|p| !p.is_none()) else { return Ok(Vec::new()) };
    crate::panics::catch(|| {
        let dict = params
            .cast::<PyDict>()
            .map_err(|_| configuration_error("params", format!("params: expected a dict, got {}", a_type(params))))?;
        let mut pairs = Vec::with_capacity(dict.len());
        for (k, v) in items(dict)? {
            let key = key_text(&Walk::new("params", Vec::new()), &k)?;
            if v.is_none() {
                continue;
            }
            let walk = Walk::new("params", vec![Step::Key(key.clone())]);
            let value = if let Ok(list) = v.cast::<PyList>() {
                list.iter()
                    .enumerate()
                    .map(|(i, item)| walk.at_index(i).param_text(&item))
                    .collect::<PyResult<Vec<_>>>()?
            } else if let Ok(tuple) = v.cast::<PyTuple>() {
                tuple
                    .iter()
                    .enumerate()
                    .map(|(i, item)| walk.at_index(i).param_text(&item))
                    .collect::<PyResult<Vec<_>>>()?
            } else {
                vec![walk.param_text(&v)?]
            };
            pairs.push((key, value.join(",")));
        }
        Ok(pairs)
    })
}

/// Where a conversion is: the argument, the path from it, and the containers open on that path.
struct Walk<'a> {
    argument: &'a str,
    steps: Vec<Step>,
    /// The containers being converted, outermost first: each one's address and the number of
    /// steps to it. Each is kept alive by the frame converting it, so an address on this list is
    /// never reused meanwhile.
    open: Vec<(usize, usize)>,
}

/// One step of a path: `.key` (or `["odd key"]`) and `[index]`.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

impl<'a> Walk<'a> {
    fn new(argument: &'a str, steps: Vec<Step>) -> Self {
        Walk { argument, steps, open: Vec::new() }
    }

    fn at_index(&self, i: usize) -> Walk<'a> {
        let mut steps = self.steps.clone();
        steps.push(Step::Index(i));
        Walk { argument: self.argument, steps, open: Vec::new() }
    }

    fn refuse(&self, what: impl std::fmt::Display) -> PyErr {
        configuration_error(self.argument, format!("{}: {what}", path_text(self.argument, &self.steps)))
    }

    /// A Python exception raised while reading the value (a `tzinfo` that fails, say), as a
    /// refusal naming the place, with the original as its cause. Interrupts pass through.
    fn failed(&self, py: Python<'_>, e: PyErr) -> PyErr {
        if !e.is_instance_of::<PyException>(py) || e.is_instance_of::<PyMemoryError>(py) {
            return e;
        }
        let refusal = self.refuse(format!("the value could not be read: {}", exception_text(py, &e)));
        refusal.set_cause(py, Some(e));
        refusal
    }

    fn value(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<Value> {
        let py = obj.py();
        if obj.is_none() {
            return Ok(Value::Null);
        }
        // bool before int: Python's bool is an int.
        if let Ok(b) = obj.cast::<PyBool>() {
            return Ok(Value::Bool(b.is_true()));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(Value::String(self.text(s)?));
        }
        if obj.cast::<PyInt>().is_ok() {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(Value::from(i));
            }
            if let Ok(u) = obj.extract::<u64>() {
                return Ok(Value::from(u));
            }
            return Err(self.refuse("the integer does not fit in 64 bits (from -2**63 to 2**64 - 1)"));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            let f = f.value();
            return serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| {
                self.refuse(format!("{f} cannot be sent as JSON (NaN and infinities are not JSON numbers)"))
            });
        }
        if let Ok(dict) = obj.cast::<PyDict>() {
            self.enter(obj)?;
            let mut map = serde_json::Map::with_capacity(dict.len());
            for (k, v) in items(dict).map_err(|e| self.failed(py, e))? {
                let key = key_text(self, &k)?;
                self.steps.push(Step::Key(key));
                let value = self.value(&v)?;
                let Some(Step::Key(key)) = self.steps.pop() else { unreachable!("pushed above") };
                map.insert(key, value);
            }
            self.open.pop();
            return Ok(Value::Object(map));
        }
        let list = obj.cast::<PyList>().ok();
        let tuple = obj.cast::<PyTuple>().ok();
        if list.is_some() || tuple.is_some() {
            self.enter(obj)?;
            let items: Box<dyn Iterator<Item = Bound<'_, PyAny>>> = match (list, tuple) {
                (Some(list), _) => Box::new(list.iter()),
                (_, Some(tuple)) => Box::new(tuple.iter()),
                _ => unreachable!("checked above"),
            };
            let mut values = Vec::new();
            for (i, item) in items.enumerate() {
                self.steps.push(Step::Index(i));
                values.push(self.value(&item)?);
                self.steps.pop();
            }
            self.open.pop();
            return Ok(Value::Array(values));
        }
        if let Some(iso) = isoformat(obj).map_err(|e| self.failed(py, e))? {
            return Ok(Value::String(iso));
        }
        Err(self.refuse(format!(
            "{} cannot be sent as JSON (use dict, list, str, int, float, bool, None, date or datetime)",
            a_type(obj)
        )))
    }

    /// Opens a container, unless it is already open (a cycle) or one too many are.
    fn enter(&mut self, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        let address = obj.as_ptr() as usize;
        if let Some(&(_, depth)) = self.open.iter().find(|(open, _)| *open == address) {
            let target = path_text(self.argument, &self.steps[..depth]);
            return Err(
                self.refuse(format!("a value that contains itself cannot be sent as JSON (it is {target} again)"))
            );
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(self.refuse(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.open.push((address, self.steps.len()));
        Ok(())
    }

    fn text(&self, s: &Bound<'_, PyString>) -> PyResult<String> {
        s.to_cow()
            .map(|c| c.into_owned())
            .map_err(|_| self.refuse("the string is not valid Unicode (it holds a lone surrogate) and cannot be sent"))
    }

    fn param_text(&self, v: &Bound<'_, PyAny>) -> PyResult<String> {
        let py = v.py();
        if let Ok(b) = v.cast::<PyBool>() {
            return Ok(if b.is_true() { "true" } else { "false" }.to_owned());
        }
        if let Ok(s) = v.cast::<PyString>() {
            return self.text(s);
        }
        // The base types' own repr: a subclass's __str__ is not asked.
        for base in [py.get_type::<PyInt>(), py.get_type::<PyFloat>()] {
            if v.is_instance(&base)? {
                let text = base.call_method1("__repr__", (v,)).map_err(|e| self.failed(py, e))?;
                return text.extract::<String>().map_err(|e| self.failed(py, e));
            }
        }
        if let Some(iso) = isoformat(v).map_err(|e| self.failed(py, e))? {
            return Ok(iso);
        }
        Err(self.refuse(format!(
            "{} cannot be sent as a query parameter (use str, int, float, bool, date, datetime or a list of those)",
            a_type(v)
        )))
    }
}

/// A dict's items as a snapshot: pyo3's dict iterator panics if the dict changes meanwhile.
fn items<'py>(dict: &Bound<'py, PyDict>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
    dict.items().iter().map(|pair| pair.extract()).collect()
}

/// A dict key, which must be a str.
fn key_text(walk: &Walk<'_>, key: &Bound<'_, PyAny>) -> PyResult<String> {
    match key.cast::<PyString>() {
        Ok(s) => s
            .to_cow()
            .map(|c| c.into_owned())
            .map_err(|_| walk.refuse("a key is not valid Unicode (it holds a lone surrogate) and cannot be sent")),
        Err(_) => Err(walk.refuse(format!("keys must be str, got {} key", a_type(key)))),
    }
}

impl Step {
    /// `.key` for a plain key, `["odd key"]` (quoted, cut after [`MAX_KEY_CHARS`]) for any other.
    fn text(&self) -> String {
        match self {
            Step::Index(i) => format!("[{i}]"),
            Step::Key(k) => {
                let mut chars = k.chars();
                let plain = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
                    && k.len() <= MAX_KEY_CHARS
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
                if plain {
                    return format!(".{k}");
                }
                let cut = match k.char_indices().nth(MAX_KEY_CHARS) {
                    Some((end, _)) => format!("{}…", &k[..end]),
                    None => k.clone(),
                };
                format!("[{}]", serde_json::Value::String(cut))
            }
        }
    }
}

/// The argument, then its steps; the middle of a very long path is left out
/// (`json[0][0]…[0][0]`), as the other bindings show it.
fn path_text(argument: &str, steps: &[Step]) -> String {
    let steps: Vec<String> = steps.iter().map(Step::text).collect();
    let full_len = argument.len() + steps.iter().map(String::len).sum::<usize>();
    if full_len <= 240 {
        return format!("{argument}{}", steps.concat());
    }
    let mut head = argument.to_owned();
    let mut i = 0;
    while i < steps.len() && head.len() + steps[i].len() <= 120 {
        head.push_str(&steps[i]);
        i += 1;
    }
    let mut tail_len = 0;
    let mut j = steps.len();
    while j > i && tail_len + steps[j - 1].len() <= 120 {
        j -= 1;
        tail_len += steps[j].len();
    }
    format!("{head}…{}", steps[j..].concat())
}

/// `datetime.datetime`, `datetime.date` and `datetime.time`, looked up once.
static DATETIME_TYPES: PyOnceLock<[Py<PyType>; 3]> = PyOnceLock::new();

/// `date`/`datetime`/`time` as ISO 8601 (by the base class's own `isoformat`, whatever a
/// subclass overrides); `None` for anything else.
pub(crate) fn isoformat(obj: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let py = obj.py();
    let types = DATETIME_TYPES.get_or_try_init(py, || -> PyResult<[Py<PyType>; 3]> {
        let datetime = py.import("datetime")?;
        let class =
            |name: &str| -> PyResult<Py<PyType>> { Ok(datetime.getattr(name)?.cast_into::<PyType>()?.unbind()) };
        // datetime before date: it is a subclass of date.
        Ok([class("datetime")?, class("date")?, class("time")?])
    })?;
    for class in types {
        let class = class.bind(py);
        if obj.is_instance(class)? {
            return Ok(Some(class.call_method1("isoformat", (obj,))?.extract()?));
        }
    }
    Ok(None)
}

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".to_owned())
}

/// The type with its article: "a set", "an object".
pub(crate) fn a_type(obj: &Bound<'_, PyAny>) -> String {
    let name = type_name(obj);
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u', 'A', 'E', 'I', 'O', 'U']) { "an" } else { "a" };
    format!("{article} {name}")
}

/// `TypeName: message` of an exception, kept short.
fn exception_text(py: Python<'_>, e: &PyErr) -> String {
    let name = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".to_owned());
    let message = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let message: String = message.chars().take(200).collect();
    if message.is_empty() {
        name
    } else {
        format!("{name}: {message}")
    }
}
