//! Routing: which operation a concrete request path names.

use std::collections::HashMap;

use super::{Catalogue, Operation};

/// A routing trie over path segments: literal children first, then one parameter child.
/// Lookup costs one hash probe per segment (plus backtracking in the rare case where a
/// literal branch dead-ends), independent of the number of operations.
#[derive(Debug, Default)]
pub(super) struct Node {
    pub(super) literal: HashMap<String, Node>,
    pub(super) param: Option<Box<Node>>,
    /// Index into `Catalogue::operations` of the operation ending here.
    pub(super) op: Option<usize>,
}

impl Node {
    fn lookup<'p>(&self, mut segments: std::str::Split<'p, char>) -> Option<usize> {
        let Some(segment) = segments.next() else {
            return self.op;
        };
        // Literal first: `customers/custom-fields` must win over `customers/{id}`. Trying
        // the literal branch before the parameter one, segment by segment, makes the
        // leftmost literal decide, which is how ASP.NET-style routers rank templates.
        if let Some(child) = self.literal.get(segment) {
            if let Some(found) = child.lookup(segments.clone()) {
                return Some(found);
            }
        }
        match &self.param {
            // A parameter stands for a non-empty segment (`customers//notes` is not a route).
            Some(child) if !segment.is_empty() => child.lookup(segments),
            _ => None,
        }
    }
}

impl Catalogue {
    /// The operation a concrete request path routes to, e.g. `GET crm/v2/tenant/5/customers/7`
    /// → `crm/v2/tenant/{tenant}/customers/{id}`. A leading `/`, the query string and a
    /// trailing `/` are ignored. Where a literal segment and a `{param}` segment both match,
    /// the literal wins (`customers/custom-fields` is not customer "custom-fields").
    pub fn find(&self, method: &str, concrete_path: &str) -> Option<&Operation> {
        self.find_index(method, concrete_path).map(|index| &self.operations[index])
    }

    /// Like [`find`](Self::find), but the operation's index in [`operations`](Self::operations),
    /// for callers that keep something per operation.
    pub fn find_index(&self, method: &str, concrete_path: &str) -> Option<usize> {
        let end = concrete_path.find(['?', '#']).unwrap_or(concrete_path.len());
        let path = &concrete_path[..end];
        let path = path.strip_prefix('/').unwrap_or(path);
        // Servers commonly treat `customers/` like `customers`; follow suit.
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.is_empty() {
            return None;
        }
        let (_, root) = self.routes.iter().find(|(m, _)| m.eq_ignore_ascii_case(method))?;
        root.lookup(path.split('/'))
    }
}

/// A template segment such as `{tenant}` stands for one concrete segment.
pub(super) fn is_param_segment(segment: &str) -> bool {
    segment.len() > 2 && segment.starts_with('{') && segment.ends_with('}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::tests::{cat, tiny};
    use serde_json::json;

    #[test]
    fn find_prefers_literal_segments_and_ignores_query() {
        let c = cat();
        let find = |m: &str, p: &str| c.find(m, p).map(|o| o.path.as_str());
        assert_eq!(
            find("GET", "crm/v2/tenant/5/customers/7?page=2&pageSize=50"),
            Some("crm/v2/tenant/{tenant}/customers/{id}")
        );
        assert_eq!(
            find("get", "/crm/v2/tenant/5/customers/custom-fields"),
            Some("crm/v2/tenant/{tenant}/customers/custom-fields")
        );
        assert_eq!(
            find("GET", "crm/v2/tenant/5/customers/contacts?modifiedOnOrAfter=2026-01-01"),
            Some("crm/v2/tenant/{tenant}/customers/contacts")
        );
        // A POST to the same literal path is not the GET.
        assert_eq!(find("POST", "crm/v2/tenant/5/customers/custom-fields"), None);
        assert_eq!(find("GET", "crm/v2/tenant/5/customers"), Some("crm/v2/tenant/{tenant}/customers"));
        assert_eq!(find("GET", "crm/v2/tenant/5/customers/"), Some("crm/v2/tenant/{tenant}/customers"));
        assert_eq!(find("GET", "crm/v2/tenant/5/export/customers"), Some("crm/v2/tenant/{tenant}/export/customers"));
        assert_eq!(find("GET", "telecom/v3/tenant/5/calls"), Some("telecom/v3/tenant/{tenant}/calls"));
        assert_eq!(find("GET", "crm/v2/tenant/5/nothing-here"), None);
        assert_eq!(find("GET", "crm/v2/tenant//customers"), None);
        assert_eq!(find("GET", ""), None);
        assert_eq!(find("BREW", "crm/v2/tenant/5/customers"), None);
    }

    #[test]
    fn find_ranks_by_leftmost_literal_and_backtracks() {
        let c = tiny(&[("GET", "a/{x}/c"), ("GET", "a/b/{y}"), ("GET", "p/q/r"), ("GET", "p/{x}/s")]);
        let find = |p: &str| c.find("GET", p).map(|o| o.path.as_str());
        assert_eq!(find("a/b/c"), Some("a/b/{y}"));
        assert_eq!(find("a/z/c"), Some("a/{x}/c"));
        // The literal `q` branch dead-ends at `s`; the parameter branch must still be tried.
        assert_eq!(find("p/q/s"), Some("p/{x}/s"));
        assert_eq!(find("p/q/r"), Some("p/q/r"));
        assert!(Catalogue::from_json(
            &json!({"source": {"repository": "r", "commit": "c"}, "modules": {}, "schemas": {},
                    "operations": [
                        {"id": "1", "module": "m", "method": "GET", "path": "a/{x}", "params": [], "body": null, "responses": {}},
                        {"id": "2", "module": "m", "method": "GET", "path": "a/{y}", "params": [], "body": null, "responses": {}}]})
            .to_string()
        )
        .is_err());
    }
}
