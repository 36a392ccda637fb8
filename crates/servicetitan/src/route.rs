//! Routing: turns `"crm/customers"` into `{api}/crm/v2/tenant/{tenant}/customers`, and refuses any path that would leave the tenant's part of the API.

use crate::error::{Error, Result};

/// The API modules (first path segment) ServiceTitan documents. Others are allowed (new
/// modules appear), but a 404 under an unknown one says so.
pub const KNOWN_MODULES: &[&str] = &[
    "accounting",
    "crm",
    "customer-interactions",
    "dispatch",
    "equipmentsystems",
    "findings",
    "forms",
    "inventory",
    "jbce",
    "jpm",
    "marketing",
    "marketingads",
    "marketingreputation",
    "memberships",
    "payroll",
    "pricebook",
    "reporting",
    "sales",
    "schedulingpro",
    "service-agreements",
    "settings",
    "taskmanagement",
    "telecom",
    "timesheets",
];

/// A resolved call target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    /// The full URL, without query.
    pub url: String,
    /// A low-cardinality name for logs and spans: `crm/v2/tenant/{tenant}/customers/{id}`.
    pub template: String,
    /// The module segment.
    pub module: String,
}

impl Route {
    pub(crate) fn is_known_module(&self) -> bool {
        KNOWN_MODULES.contains(&self.module.as_str())
    }
}

/// Resolves `path` for `tenant` under `api_url`. With `export`, the resource is looked up
/// under `export/` (`crm/customers` → `crm/v2/tenant/{t}/export/customers`).
pub(crate) fn resolve(api_url: &str, tenant: i64, path: &str, export: bool) -> Result<Route> {
    let refuse = |why: &str| Error::configuration("path", format!("{path:?}: {why}"));
    if path.trim().is_empty() {
        return Err(refuse("the path is empty"));
    }
    if path.contains("://") || path.starts_with("//") {
        return Err(refuse("give a path such as \"crm/customers\", not a URL"));
    }
    if let Some(c) = path.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\')) {
        return Err(refuse(&format!("{c:?} is not allowed in a path (query parameters go in .query())")));
    }
    let lower = path.to_ascii_lowercase();
    if ["%2e", "%2f", "%5c"].iter().any(|p| lower.contains(p)) {
        return Err(refuse("encoded dots and slashes are not allowed"));
    }

    let tenant_text = tenant.to_string();
    let absolute = path.starts_with('/');
    let filled = path.replace("{tenant}", &tenant_text);
    let trimmed = filled.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<&str> = trimmed.split('/').collect();
    for s in &segments {
        if s.is_empty() {
            return Err(refuse("empty path segments (\"//\") are not allowed"));
        }
        if *s == "." || *s == ".." {
            return Err(refuse("\".\" and \"..\" are not allowed"));
        }
    }

    let module = segments[0];
    if !module.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err(refuse(&format!("{module:?} is not a module name (known modules: {})", KNOWN_MODULES.join(", "))));
    }
    let is_version = |s: &str| s.len() > 1 && s.starts_with('v') && s[1..].chars().all(|c| c.is_ascii_digit());
    let (version, mut rest) = match segments.get(1) {
        Some(v) if is_version(v) => (*v, &segments[2..]),
        _ if absolute => return Err(refuse("an absolute path must be /{module}/v{n}/tenant/{tenant}/…")),
        _ => ("v2", &segments[1..]),
    };
    if rest.first() == Some(&"tenant") {
        match rest.get(1) {
            Some(id) if *id == tenant_text => rest = &rest[2..],
            Some(id) => return Err(refuse(&format!("the path names tenant {id}, but this is tenant {tenant}"))),
            None => return Err(refuse("the path ends at \"tenant\"")),
        }
    } else if absolute {
        return Err(refuse("an absolute path must be /{module}/v{n}/tenant/{tenant}/…"));
    }
    if rest.is_empty() {
        return Err(refuse("no resource after the module"));
    }

    let mut resource: Vec<&str> = Vec::with_capacity(rest.len() + 1);
    if export && rest[0] != "export" {
        resource.push("export");
    }
    resource.extend_from_slice(rest);
    let resource = resource.join("/");
    let template_resource: Vec<&str> =
        resource.split('/').map(|s| if s.chars().all(|c| c.is_ascii_digit()) { "{id}" } else { s }).collect();
    Ok(Route {
        url: format!("{api_url}/{module}/{version}/tenant/{tenant}/{resource}"),
        template: format!("{module}/{version}/tenant/{{tenant}}/{}", template_resource.join("/")),
        module: module.to_owned(),
    })
}

/// Percent-encodes one path segment built from caller data (report categories).
pub(crate) fn encode_segment(segment: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'~');
    let encoded = utf8_percent_encode(segment, SEGMENT).to_string();
    // '.' is left for the route check to refuse as "." or "..", so encode it only inside a word.
    encoded.replace("%2E", ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = "https://api.example";

    fn url(path: &str) -> String {
        resolve(API, 42, path, false).unwrap().url
    }

    fn refused(path: &str) -> bool {
        resolve(API, 42, path, false).is_err()
    }

    #[test]
    fn short_paths_get_the_default_version_and_tenant() {
        assert_eq!(url("crm/customers"), "https://api.example/crm/v2/tenant/42/customers");
        assert_eq!(url("crm/customers/7"), "https://api.example/crm/v2/tenant/42/customers/7");
        assert_eq!(url("crm/customers/"), "https://api.example/crm/v2/tenant/42/customers");
        assert_eq!(url("telecom/v3/calls"), "https://api.example/telecom/v3/tenant/42/calls");
        assert_eq!(url("crm/v2/tenant/42/customers"), "https://api.example/crm/v2/tenant/42/customers");
        assert_eq!(url("crm/v2/tenant/{tenant}/customers"), "https://api.example/crm/v2/tenant/42/customers");
    }

    #[test]
    fn absolute_paths_are_used_as_given_with_the_tenant_filled_in() {
        assert_eq!(url("/crm/v2/tenant/{tenant}/customers"), "https://api.example/crm/v2/tenant/42/customers");
        assert_eq!(url("/telecom/v3/tenant/42/calls"), "https://api.example/telecom/v3/tenant/42/calls");
    }

    #[test]
    fn paths_that_leave_the_tenant_are_refused() {
        for bad in [
            "",
            "crm",
            "/crm/customers",
            "/crm/v2/customers",
            "crm/../settings/employees",
            "crm/v2/tenant/43/customers",
            "/crm/v2/tenant/43/customers",
            "/crm/v2/tenant/{tenant}/../../43/customers",
            "crm//customers",
            "//evil.example/crm/customers",
            "https://evil.example/crm/v2/tenant/42/customers",
            "crm/customers?active=Any",
            "crm/customers#x",
            "crm/%2e%2e/x",
            "crm/a%2Fb",
            "CRM/customers",
            "crm/cust omers",
            "crm\\customers",
            "crm/v2/tenant",
            "crm/./customers",
        ] {
            assert!(refused(bad), "{bad:?} was accepted");
        }
        let e = resolve(API, 42, "crm/../x", false).unwrap_err();
        assert_eq!(e.code().as_str(), "configuration");
        assert_eq!(e.argument(), Some("path"));
    }

    #[test]
    fn exports_and_templates() {
        let r = resolve(API, 42, "crm/customers", true).unwrap();
        assert_eq!(r.url, "https://api.example/crm/v2/tenant/42/export/customers");
        let r = resolve(API, 42, "crm/export/customers", true).unwrap();
        assert_eq!(r.url, "https://api.example/crm/v2/tenant/42/export/customers");
        let r = resolve(API, 42, "crm/customers/123/contacts", false).unwrap();
        assert_eq!(r.template, "crm/v2/tenant/{tenant}/customers/{id}/contacts");
        assert!(r.is_known_module());
        assert!(!resolve(API, 42, "crmx/customers", false).unwrap().is_known_module());
    }

    #[test]
    fn caller_segments_are_encoded() {
        assert_eq!(encode_segment("operations"), "operations");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert!(refused(&format!("reporting/report-category/{}/reports", encode_segment(".."))));
    }
}
