//! JSON re-indented as text, keys in the order the API sent them (a decoded `serde_json::Value`
//! would sort them), for the answers `call` and `report` print.

/// Writes the valid JSON text `input` to `out`, pretty (two-space indent) or compact (one line).
///
/// The caller checks that `input` is valid JSON first; the tokens are copied as they are, only
/// the whitespace between them changes.
pub fn reformat(input: &[u8], pretty: bool, out: &mut Vec<u8>) {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // After `{` or `[`: the line break waits, so that `{}` and `[]` stay on one line.
    let mut opened = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.extend(std::iter::repeat_n(b' ', depth * 2));
    };
    for &byte in input {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        if byte.is_ascii_whitespace() {
            continue;
        }
        if opened {
            opened = false;
            if byte != b'}' && byte != b']' && pretty {
                newline(out, depth);
            }
        }
        match byte {
            b'{' | b'[' => {
                out.push(byte);
                depth += 1;
                opened = true;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if pretty && !matches!(out.last(), Some(b'{' | b'[')) {
                    newline(out, depth);
                }
                out.push(byte);
            }
            b',' => {
                out.push(byte);
                if pretty {
                    newline(out, depth);
                }
            }
            b':' => {
                out.push(byte);
                if pretty {
                    out.push(b' ');
                }
            }
            b'"' => {
                out.push(byte);
                in_string = true;
            }
            _ => out.push(byte),
        }
    }
}

/// `input` re-indented, as text.
pub fn pretty(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len() + input.len() / 4);
    reformat(input, true, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `input` on one line, as text.
pub fn compact(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    reformat(input, false, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_and_the_strings() {
        let text = br#" {"z": 1, "a": [ ], "m": {}, "s": "a, b: {\"c\"} [d]", "l": [1, {"x": null}]} "#;
        assert_eq!(
            String::from_utf8(compact(text)).unwrap(),
            r#"{"z":1,"a":[],"m":{},"s":"a, b: {\"c\"} [d]","l":[1,{"x":null}]}"#
        );
        assert_eq!(
            pretty(text),
            "{\n  \"z\": 1,\n  \"a\": [],\n  \"m\": {},\n  \"s\": \"a, b: {\\\"c\\\"} [d]\",\n  \"l\": [\n    1,\n    {\n      \"x\": null\n    }\n  ]\n}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&pretty(text)).unwrap();
        assert_eq!(parsed, serde_json::from_slice::<serde_json::Value>(text).unwrap());
        assert_eq!(pretty(b"\"x\\\\\""), "\"x\\\\\"");
    }
}
