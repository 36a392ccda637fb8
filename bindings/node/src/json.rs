//! JSON values from the caller (request bodies, report parameters, sandbox options) cross as
//! text made by the package's converter (`node/convert.js`), which already refused cycles,
//! values JSON cannot carry and nesting past `MAX_DEPTH`. The limit is checked again here, so
//! that parsing never recurses deeper than that whoever calls the addon.

use serde::Deserialize;
use serde_json::Value;

use crate::error::configuration_for;

/// Arrays and objects nested deeper than this are refused.
pub(crate) const MAX_DEPTH: usize = 128;

/// How deeply arrays and objects nest in `text`, counted without parsing.
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses the JSON text of the argument named `argument`.
pub(crate) fn parse(text: &str, argument: &str) -> napi::Result<Value> {
    if nesting(text.as_bytes()) > MAX_DEPTH {
        return Err(configuration_for(argument, format!("{argument}: nested deeper than {MAX_DEPTH} levels")));
    }
    // serde_json's own limit (128 frames) would refuse the deepest values allowed above.
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    Value::deserialize(&mut de)
        .and_then(|value| de.end().map(|()| value))
        .map_err(|e| configuration_for(argument, format!("{argument}: not valid JSON ({e})")))
}
