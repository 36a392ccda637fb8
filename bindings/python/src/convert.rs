//! Response bodies decoded straight into Python dicts and lists (no intermediate
//! `serde_json::Value`). serde_json's recursion limit (128) bounds the nesting, so a hostile body
//! nested thousands deep is a `DecodeError`, not a stack overflow. (Values going the other way
//! are in `values`.)

use std::cell::RefCell;
use std::fmt;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyModule, PyString};
use pyo3::BoundObject;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use servicetitan::{RawRecord, ResponseBody};

use crate::errors::to_py;

// ---------------------------------------------------------------------------------------------
// JSON bytes -> Python

/// Decodes the JSON answer to a call into Python objects.
pub(crate) fn json_to_py<'py>(py: Python<'py>, body: &ResponseBody) -> PyResult<Bound<'py, PyAny>> {
    // Named by the engine, with the request's URL, as its own decode errors are.
    crate::panics::catch(|| decode_value(py, body).map_err(|e| to_py(body.decode_error(e))))
}

fn decode_value<'py>(py: Python<'py>, bytes: &[u8]) -> Result<Bound<'py, PyAny>, serde_json::Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // 204 No Content and friends: the engine treats an empty body as `null` too.
        return Ok(py.None().into_bound(py));
    }
    let _paused = GcPause::new(py, bytes.len());
    let keys = KeyCache::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = PyJson { py, keys: &keys }.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Decodes the `data` array of the page `record` comes from (`{"data": [...], "hasMore": ...}`)
/// into a list, skipping the other fields (the engine already read them). The engine checked the
/// page's shape without building its strings, so a body it passed may still fail here (a lone
/// surrogate, invalid UTF-8): the error names the page's request, as the engine's own do.
pub(crate) fn page_data_to_py<'py>(py: Python<'py>, record: &RawRecord) -> PyResult<Bound<'py, PyList>> {
    crate::panics::catch(|| decode_page_data(py, &record.page).map_err(|e| to_py(record.decode_error(e))))
}

fn decode_page_data<'py>(py: Python<'py>, bytes: &[u8]) -> Result<Bound<'py, PyList>, serde_json::Error> {
    let _paused = GcPause::new(py, bytes.len());
    let keys = KeyCache::default();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let data = PageData { py, keys: &keys }.deserialize(&mut de)?;
    de.end()?;
    Ok(data.unwrap_or_else(|| PyList::empty(py)))
}

/// Response records repeat the same few keys thousands of times: reuse one Python string per key
/// (it also keeps its hash, so dict inserts skip rehashing). Direct-mapped on a cheap hash of the
/// key's ends: a page has a few dozen distinct keys, and a lookup must cost less than making the
/// string anew.
struct KeyCache<'py> {
    slots: RefCell<Vec<Option<CachedKey<'py>>>>,
}

type CachedKey<'py> = (Box<str>, Bound<'py, PyString>);

const KEY_CACHE_SLOTS: usize = 512;
const MAX_CACHED_KEY_LEN: usize = 64;

impl Default for KeyCache<'_> {
    fn default() -> Self {
        KeyCache { slots: RefCell::new(vec![None; KEY_CACHE_SLOTS]) }
    }
}

fn key_slot(key: &[u8]) -> usize {
    let mut head = [0u8; 8];
    let mut tail = [0u8; 8];
    let n = key.len().min(8);
    head[..n].copy_from_slice(&key[..n]);
    tail[..n].copy_from_slice(&key[key.len() - n..]);
    let h = (u64::from_le_bytes(head) ^ u64::from_le_bytes(tail).rotate_left(29) ^ key.len() as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> 55) as usize % KEY_CACHE_SLOTS
}

impl<'py> KeyCache<'py> {
    fn get(&self, py: Python<'py>, key: &str) -> Bound<'py, PyString> {
        if key.len() > MAX_CACHED_KEY_LEN {
            return PyString::new(py, key);
        }
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[key_slot(key.as_bytes())];
        if let Some((cached, string)) = slot {
            if **cached == *key {
                return string.clone();
            }
        }
        let made = PyString::intern(py, key);
        *slot = Some((key.into(), made.clone()));
        made
    }
}

/// Pauses Python's cycle collector while a body is decoded. Every object made here is fresh and
/// referenced from the result, so collections triggered by the allocations (one per 700
/// containers) would traverse them all for nothing; the GIL is held throughout, so no other
/// Python code runs meanwhile. A collector the user turned off stays off.
struct GcPause<'py> {
    gc: Option<Bound<'py, PyModule>>,
}

impl<'py> GcPause<'py> {
    fn new(py: Python<'py>, body_len: usize) -> Self {
        // Small bodies make too few objects to trigger a collection.
        if body_len < 64 * 1024 {
            return GcPause { gc: None };
        }
        let gc = py.import("gc").ok().filter(|gc| {
            gc.call_method0("isenabled").and_then(|v| v.is_truthy()).unwrap_or(false)
                && gc.call_method0("disable").is_ok()
        });
        GcPause { gc }
    }
}

impl Drop for GcPause<'_> {
    fn drop(&mut self) {
        if let Some(gc) = &self.gc {
            let _ = gc.call_method0("enable");
        }
    }
}

#[derive(Clone, Copy)]
struct PyJson<'a, 'py> {
    py: Python<'py>,
    keys: &'a KeyCache<'py>,
}

/// A Python exception raised while building objects, carried through serde's error type.
fn py_err<E: serde::de::Error>(e: PyErr) -> E {
    E::custom(e)
}

impl<'de, 'py> DeserializeSeed<'de> for PyJson<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, 'py> Visitor<'de> for PyJson<'_, 'py> {
    type Value = Bound<'py, PyAny>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(PyBool::new(self.py, v).to_owned().into_any())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(match v.into_pyobject(self.py) {
            Ok(n) => n.into_any(),
            Err(never) => match never {},
        })
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(match v.into_pyobject(self.py) {
            Ok(n) => n.into_any(),
            Err(never) => match never {},
        })
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(PyFloat::new(self.py, v).into_any())
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(PyString::new(self.py, v).into_any())
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(self.py.None().into_bound(self.py))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(PyList::new(self.py, items).map_err(py_err)?.into_any())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let dict = PyDict::new(self.py);
        while let Some(key) = map.next_key_seed(Key(self))? {
            let value = map.next_value_seed(self)?;
            dict.set_item(key, value).map_err(py_err)?;
        }
        Ok(dict.into_any())
    }
}

/// An object key, through the [`KeyCache`].
struct Key<'a, 'py>(PyJson<'a, 'py>);

impl<'de, 'py> DeserializeSeed<'de> for Key<'_, 'py> {
    type Value = Bound<'py, PyString>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de, 'py> Visitor<'de> for Key<'_, 'py> {
    type Value = Bound<'py, PyString>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.keys.get(self.0.py, v))
    }
}

/// The `data` field of a page object.
struct PageData<'a, 'py> {
    py: Python<'py>,
    keys: &'a KeyCache<'py>,
}

impl<'de, 'py> DeserializeSeed<'de> for PageData<'_, 'py> {
    type Value = Option<Bound<'py, PyList>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, 'py> Visitor<'de> for PageData<'_, 'py> {
    type Value = Option<Bound<'py, PyList>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a page object with a data array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "data" {
                let value = map.next_value_seed(PyJson { py: self.py, keys: self.keys })?;
                if value.is_none() {
                    continue;
                }
                data = Some(
                    value
                        .cast_into::<PyList>()
                        .map_err(|_| serde::de::Error::custom("the page's data field is not an array"))?,
                );
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(data)
    }
}

/// A `serde_json::Value` (stats, sandbox settings) as Python objects.
pub(crate) fn value_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    crate::panics::catch(|| value_tree(py, value))
}

/// The conversion behind `value_to_py`: values made by serde_json are at most 128 levels deep.
fn value_tree<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            PyList::new(py, items.iter().map(|v| value_tree(py, v)).collect::<PyResult<Vec<_>>>()?)?.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, value_tree(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// An export's `since`: a saved `continue_from` (str) or a `date`/`datetime` (ISO 8601), as Node
/// takes a string or a `Date`.
pub(crate) fn since_text(since: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(since) = since.filter(|s| !s.is_none()) else { return Ok(None) };
    if let Ok(text) = since.extract::<String>() {
        return Ok(Some(text));
    }
    match crate::values::isoformat(since)? {
        Some(iso) => Ok(Some(iso)),
        None => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "since: expected a saved continue_from (str) or a date/datetime, got {}",
            crate::values::type_name(since)
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Engine results crossing into Python

/// A response body, decoded into Python objects once the GIL is held.
pub(crate) struct Body(pub(crate) ResponseBody);

impl<'py> IntoPyObject<'py> for Body {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_to_py(py, &self.0)
    }
}

/// An engine result crossing back into Python: the error, too, is converted only with the GIL
/// held (on pyo3-async-runtimes' blocking thread), never on a runtime worker.
pub(crate) struct Outcome<T>(pub(crate) servicetitan::Result<T>);

impl<'py, T: IntoPyObject<'py>> IntoPyObject<'py> for Outcome<T>
where
    PyErr: From<T::Error>,
{
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.0 {
            Ok(v) => Ok(v.into_pyobject(py)?.into_any().into_bound()),
            Err(e) => Err(to_py(e)),
        }
    }
}

/// Report rows (named records) as a list of dicts.
pub(crate) struct Rows(pub(crate) Vec<servicetitan::Record>);

impl<'py> IntoPyObject<'py> for Rows {
    type Target = PyList;
    type Output = Bound<'py, PyList>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let rows = self
            .0
            .into_iter()
            .map(|record| value_to_py(py, &serde_json::Value::Object(record)))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, rows)
    }
}

/// An engine value crossing as plain Python objects (dicts keyed by its camelCase serde names),
/// converted once the GIL is held.
pub(crate) struct AsJson<T>(pub(crate) T);

impl<'py, T: serde::Serialize> IntoPyObject<'py> for AsJson<T> {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = serde_json::to_value(&self.0)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("result does not serialize: {e}")))?;
        value_to_py(py, &value)
    }
}
