//! Generated data: records of the core resources, computed from (seed, resource, index) on demand
//! so that a million records cost no memory, in the shapes of the official specs (each resource's
//! template is a valid instance of its spec schema, filled in per record). Records created or
//! changed through POST/PATCH live in a small in-memory overlay and join the export feed's tail.

use std::collections::HashMap;
use std::sync::RwLock;

use std::fmt;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::catalogue::Catalogue;
use crate::util::{mix_all, now_unix_ms, Rfc3339Ms};

/// 2024-01-01T00:00:00Z: generated record `i` was last modified `i` minutes after this.
pub const EPOCH_MS: i64 = 1_704_067_200_000;
pub const STEP_MS: i64 = 60_000;

/// Every tenth generated record is inactive, as deactivated and merged rows are in real data.
fn generated_active(index: u64) -> bool {
    !index.is_multiple_of(10)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Customers,
    Locations,
    Jobs,
    Invoices,
    Employees,
    Technicians,
    BusinessUnits,
}

/// The resources the sandbox serves, where their routes live, and which optional fields of the
/// spec schema it fills in besides the required ones.
pub struct ResourceSpec {
    pub kind: Kind,
    pub module: &'static str,
    pub path: &'static str,
    optional_fields: &'static [&'static str],
}

pub const RESOURCES: &[ResourceSpec] = &[
    ResourceSpec { kind: Kind::Customers, module: "crm", path: "customers", optional_fields: &[] },
    ResourceSpec { kind: Kind::Locations, module: "crm", path: "locations", optional_fields: &[] },
    ResourceSpec { kind: Kind::Jobs, module: "jpm", path: "jobs", optional_fields: &["summary", "completedOn"] },
    ResourceSpec {
        kind: Kind::Invoices,
        module: "accounting",
        path: "invoices",
        optional_fields: &["modifiedOn", "referenceNumber", "invoiceDate", "total", "balance", "customer", "job"],
    },
    ResourceSpec { kind: Kind::Employees, module: "settings", path: "employees", optional_fields: &["email"] },
    ResourceSpec { kind: Kind::Technicians, module: "settings", path: "technicians", optional_fields: &["email"] },
    ResourceSpec {
        kind: Kind::BusinessUnits,
        module: "settings",
        path: "business-units",
        optional_fields: &["officialName", "email"],
    },
];

/// One resource's templates and the spec operations it answers.
pub struct Resource {
    pub spec: &'static ResourceSpec,
    /// Spec route templates, e.g. `crm/v2/tenant/{tenant}/customers`.
    pub list_route: String,
    pub get_route: Option<String>,
    pub export_route: Option<String>,
    list_template: Map<String, Value>,
    export_template: Map<String, Value>,
    /// The export template rendered once, with holes where records differ.
    export_stencil: Stencil,
    /// Ids of generated record `i` are `id_base + i`, so ids of different resources never collide.
    id_base: i64,
}

/// What POST and PATCH changed: field values laid over the generated record, and the change log
/// that the export feed serves after the generated records.
#[derive(Default)]
struct Overlay {
    fields: HashMap<u64, Map<String, Value>>,
    /// (index, time of change): one entry per change, in order.
    changes: Vec<(u64, i64)>,
    /// The position in `changes` of each record's latest change; earlier ones are skipped.
    latest_change: HashMap<u64, usize>,
    created: u64,
    created_on: HashMap<u64, i64>,
}

/// Every operation of the specs that the sandbox answers, as (method, route template).
pub fn implemented_operations() -> Vec<(&'static str, String)> {
    let catalogue = Catalogue::embedded();
    let store = Store::new(catalogue, 0, 0);
    let mut ops = Vec::new();
    for r in &store.resources {
        ops.push(("GET", r.list_route.clone()));
        ops.extend(r.get_route.iter().map(|g| ("GET", g.clone())));
        ops.extend(r.export_route.iter().map(|e| ("GET", e.clone())));
        if r.spec.kind == Kind::Customers {
            ops.push(("POST", r.list_route.clone()));
            ops.push(("PATCH", format!("{}/{{id}}", r.list_route)));
        }
    }
    let reporting = "reporting/v2/tenant/{tenant}";
    ops.push(("GET", format!("{reporting}/report-categories")));
    ops.push(("GET", format!("{reporting}/report-category/{{report_category}}/reports")));
    ops.push(("GET", format!("{reporting}/report-category/{{report_category}}/reports/{{reportId}}")));
    ops.push(("POST", format!("{reporting}/report-category/{{report_category}}/reports/{{reportId}}/data")));
    ops
}

pub struct Store {
    pub resources: Vec<Resource>,
    pub count: u64,
    seed: u64,
    overlays: Vec<RwLock<Overlay>>,
}

/// A page of records and whether more follow.
pub struct Page {
    pub records: Vec<Value>,
    pub has_more: bool,
    pub total: Option<u64>,
}

/// A slice of the export feed, rendered as a JSON array, and the position after it.
pub struct ExportSlice {
    pub data: Vec<u8>,
    pub next_position: u64,
    pub has_more: bool,
}

/// List filters the sandbox applies (others in the spec are accepted and ignored).
#[derive(Default)]
pub struct ListFilter {
    /// `None` = any.
    pub active: Option<bool>,
    pub modified_on_or_after_ms: Option<i64>,
    pub ids: Option<Vec<i64>>,
}

const FIRST: &[&str] = &[
    "Ava", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jamal", "Kira", "Luis", "Mia", "Noah",
    "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
];
const LAST: &[&str] = &[
    "Anders", "Brooks", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Khan", "Lopez",
    "Moreau", "Nakamura", "Okafor", "Patel", "Quist", "Rossi", "Silva", "Turner",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Austin", "TX", "787"),
    ("Denver", "CO", "802"),
    ("Phoenix", "AZ", "850"),
    ("Atlanta", "GA", "303"),
    ("Columbus", "OH", "432"),
    ("Tampa", "FL", "336"),
    ("Boise", "ID", "837"),
    ("Omaha", "NE", "681"),
];
const STREETS: &[&str] =
    &["Oak St", "Maple Ave", "Cedar Ln", "Pine Rd", "Elm Dr", "Birch Way", "Willow Ct", "Aspen Blvd"];
const TRADES: &[&str] = &["Plumbing", "HVAC", "Electrical", "Drains", "Water Heaters", "Roofing"];
const JOB_STATUSES: &[&str] = &["Completed", "Scheduled", "InProgress", "Canceled", "Hold"];

fn pick<T: Copy>(list: &[T], h: u64) -> T {
    list[(h % list.len() as u64) as usize]
}

/// The record schema of a list (`data.items`) or get response.
fn record_schema<'a>(catalogue: &'a Catalogue, response: &'a Value, listed: bool) -> &'a Value {
    let response = catalogue.resolve(response);
    if listed {
        response.pointer("/properties/data/items").map(|s| catalogue.resolve(s)).unwrap_or(response)
    } else {
        response
    }
}

fn template(catalogue: &Catalogue, schema: &Value, optional: &[&str]) -> Map<String, Value> {
    let mut map = match catalogue.example(schema) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for field in optional {
            if let Some(prop) = props.get(*field) {
                map.insert((*field).to_string(), catalogue.example(prop));
            }
        }
    }
    map
}

fn response_200<'a>(catalogue: &'a Catalogue, method: &str, route: &str) -> Option<&'a Value> {
    catalogue.operation(method, route)?.responses.get("200")
}

impl Store {
    pub fn new(catalogue: &Catalogue, seed: u64, count: u64) -> Self {
        let mut resources = Vec::new();
        for (n, spec) in RESOURCES.iter().enumerate() {
            let prefix = format!("{}/v2/tenant/{{tenant}}", spec.module);
            let list_route = format!("{prefix}/{}", spec.path);
            let get_route = format!("{prefix}/{}/{{id}}", spec.path);
            let export_route = format!("{prefix}/export/{}", spec.path);
            let list = response_200(catalogue, "GET", &list_route)
                .unwrap_or_else(|| panic!("the catalogue lacks GET {list_route}"));
            let list_schema = record_schema(catalogue, list, true);
            let list_template = template(catalogue, list_schema, spec.optional_fields);
            let export = response_200(catalogue, "GET", &export_route);
            let export_template = export
                .map(|e| template(catalogue, record_schema(catalogue, e, true), spec.optional_fields))
                .unwrap_or_else(|| list_template.clone());
            resources.push(Resource {
                spec,
                get_route: response_200(catalogue, "GET", &get_route).map(|_| get_route),
                export_route: export.map(|_| export_route),
                list_route,
                list_template,
                export_template,
                export_stencil: Stencil::default(),
                id_base: (n as i64 + 1) * 100_000_000,
            });
        }
        let overlays = resources.iter().map(|_| RwLock::new(Overlay::default())).collect();
        let mut store = Store { resources, count, seed, overlays };
        for resource in 0..store.resources.len() {
            // Every record is stamped at the same places, so any one record shows where.
            let mut paths = Paths(Vec::new());
            store.stamp(resource, &Overlay::default(), 1, &mut paths);
            let paths = paths.0;
            store.resources[resource].export_stencil = Stencil::new(&store.resources[resource].export_template, &paths);
        }
        store
    }

    pub fn find(&self, module: &str, path: &str) -> Option<usize> {
        self.resources
            .iter()
            .position(|r| r.spec.module.eq_ignore_ascii_case(module) && r.spec.path.eq_ignore_ascii_case(path))
    }

    fn index_of(&self, resource: usize, id: i64) -> Option<u64> {
        let index = id.checked_sub(self.resources[resource].id_base)?;
        let index = u64::try_from(index).ok().filter(|i| *i >= 1)?;
        if index <= self.count || self.overlays[resource].read().unwrap().created_on.contains_key(&index) {
            Some(index)
        } else {
            None
        }
    }

    fn id_of(&self, resource: usize, index: u64) -> i64 {
        self.resources[resource].id_base + index as i64
    }

    fn modified_ms(overlay: &Overlay, index: u64) -> i64 {
        match overlay.latest_change.get(&index) {
            Some(&pos) => overlay.changes[pos].1,
            None => EPOCH_MS + index as i64 * STEP_MS,
        }
    }

    fn active(overlay: &Overlay, index: u64) -> bool {
        match overlay.fields.get(&index).and_then(|f| f.get("active")).and_then(Value::as_bool) {
            Some(a) => a,
            None => index > 0 && (overlay.created_on.contains_key(&index) || generated_active(index)),
        }
    }

    /// Builds record `index` of `resource` in list shape (`export = false`) or export shape.
    fn record(&self, resource: usize, overlay: &Overlay, index: u64, export: bool) -> Value {
        let r = &self.resources[resource];
        let mut m = if export { r.export_template.clone() } else { r.list_template.clone() };
        self.stamp(resource, overlay, index, &mut m);
        if let Some(fields) = overlay.fields.get(&index) {
            for (k, v) in fields {
                if m.contains_key(k) {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(m)
    }

    /// Puts what differs from record to record over its template, through `to`: into a copy of
    /// the template itself, or into the holes of its [`Stencil`].
    fn stamp(&self, resource: usize, overlay: &Overlay, index: u64, to: &mut impl Stamper) {
        let r = &self.resources[resource];
        let h = mix_all(&[self.seed, resource as u64, index]);
        let modified = Self::modified_ms(overlay, index);
        let created = overlay.created_on.get(&index).copied().unwrap_or(modified - (h % (400 * 86_400_000)) as i64);
        to.int(("id", None), self.id_of(resource, index));
        to.boolean(("active", None), Self::active(overlay, index));
        to.text(("createdOn", None), format_args!("{}", Rfc3339Ms(created)));
        to.text(("modifiedOn", None), format_args!("{}", Rfc3339Ms(modified)));
        to.int(("createdById", None), 1 + ((h >> 8) % 50) as i64);
        let (first, last) = (pick(FIRST, h >> 3), pick(LAST, h >> 11));
        let (city, state, zip) = pick(CITIES, h >> 17);
        let address = Address {
            city,
            country: "USA",
            state,
            street: Street(100 + (h >> 21) % 9900, pick(STREETS, h >> 35)),
            zip: Zip(zip, (h >> 41) % 100),
        };
        // Related records point at generated records of the other resources.
        let related = |salt: u64, resource: Kind| -> i64 {
            let n = RESOURCES.iter().position(|s| s.kind == resource).unwrap();
            let base = self.resources[n].id_base;
            base + 1 + (mix_all(&[self.seed, index, salt]) % self.count.max(1)) as i64
        };
        match r.spec.kind {
            Kind::Customers => {
                let commercial = h.is_multiple_of(5);
                if commercial {
                    to.text(("name", None), format_args!("{last} {} LLC", pick(TRADES, h >> 45)));
                } else {
                    to.text(("name", None), format_args!("{first} {last}"));
                }
                to.text(("type", None), format_args!("{}", if commercial { "Commercial" } else { "Residential" }));
                to.address(("address", None), &address);
                to.amount(("balance", None), ((h >> 13) % 100_000) as f64 / 100.0);
            }
            Kind::Locations => {
                to.text(("name", None), format_args!("{first} {last} residence"));
                to.int(("customerId", None), related(1, Kind::Customers));
                to.address(("address", None), &address);
            }
            Kind::Jobs => {
                to.text(("jobNumber", None), format_args!("{}", 10_000 + index));
                to.int(("customerId", None), related(1, Kind::Customers));
                to.int(("locationId", None), related(2, Kind::Locations));
                to.int(("businessUnitId", None), related(3, Kind::BusinessUnits));
                to.text(("jobStatus", None), format_args!("{}", pick(JOB_STATUSES, h >> 5)));
                to.text(("priority", None), format_args!("{}", pick(&["Low", "Normal", "High", "Urgent"], h >> 9)));
                to.text(("summary", None), format_args!("{} service call", pick(TRADES, h >> 45)));
            }
            Kind::Invoices => {
                let total = ((h >> 13) % 500_000) as f64 / 100.0;
                to.text(("referenceNumber", None), format_args!("INV-{}", 50_000 + index));
                to.text(("invoiceDate", None), format_args!("{}", Rfc3339Ms(modified)));
                to.amount(("total", None), total);
                to.amount(("balance", None), if h.is_multiple_of(3) { total } else { 0.0 });
                to.int(("customer", Some("id")), related(1, Kind::Customers));
                to.text(("customer", Some("name")), format_args!("{first} {last}"));
                to.int(("job", Some("id")), related(4, Kind::Jobs));
                to.text(("job", Some("number")), format_args!("{}", 10_000 + index));
            }
            Kind::Employees | Kind::Technicians => {
                to.text(("name", None), format_args!("{first} {last}"));
                to.int(("userId", None), 1000 + index as i64);
                to.text(("email", None), format_args!("{}.{index}@example.com", first.to_ascii_lowercase()));
                to.amount(("hourlyRate", None), 20.0 + ((h >> 7) % 4000) as f64 / 100.0);
            }
            Kind::BusinessUnits => {
                let (trade, city) = (pick(TRADES, h >> 3), pick(CITIES, h >> 17).0);
                to.text(("officialName", None), format_args!("{trade} {city} Inc."));
                to.text(("name", None), format_args!("{trade} {city}"));
            }
        }
    }

    /// Appends record `index` in export shape to `out` as JSON: stamped into the rendered
    /// template when the record is as generated, built in full when POST or PATCH changed it.
    fn render_export(&self, resource: usize, overlay: &Overlay, index: u64, out: &mut Vec<u8>, scratch: &mut Scratch) {
        let changed = overlay.fields.contains_key(&index)
            || overlay.latest_change.contains_key(&index)
            || overlay.created_on.contains_key(&index);
        if !changed {
            let mut holes = Holes::new(&self.resources[resource].export_stencil, scratch);
            self.stamp(resource, overlay, index, &mut holes);
            if holes.finish(out) {
                return;
            }
        }
        serde_json::to_writer(&mut *out, &self.record(resource, overlay, index, true)).expect("JSON serialises");
    }

    pub fn get(&self, resource: usize, id: i64) -> Option<Value> {
        let index = self.index_of(resource, id)?;
        let overlay = self.overlays[resource].read().unwrap();
        Some(self.record(resource, &overlay, index, false))
    }

    /// One page of a list, ordered by id, after filtering.
    pub fn list(&self, resource: usize, filter: &ListFilter, page: u64, page_size: u64, include_total: bool) -> Page {
        let overlay = self.overlays[resource].read().unwrap();
        let matches = |index: u64| -> bool {
            filter.active.is_none_or(|a| Self::active(&overlay, index) == a)
                && filter.modified_on_or_after_ms.is_none_or(|t| Self::modified_ms(&overlay, index) >= t)
        };
        let candidates: Box<dyn Iterator<Item = u64>> = match &filter.ids {
            Some(ids) => {
                let mut indexes: Vec<u64> = ids.iter().filter_map(|id| self.index_of(resource, *id)).collect();
                indexes.sort_unstable();
                indexes.dedup();
                Box::new(indexes.into_iter())
            }
            None => {
                // Records modified before the cut-off are skipped arithmetically: generated records
                // are in modification order, and changed ones are rechecked by `matches`.
                let start = match filter.modified_on_or_after_ms {
                    Some(t) if overlay.fields.is_empty() => {
                        ((t - EPOCH_MS).max(0) as u64).div_ceil(STEP_MS as u64).max(1)
                    }
                    _ => 1,
                };
                let mut created: Vec<u64> = overlay.created_on.keys().copied().collect();
                created.sort_unstable();
                Box::new((start..=self.count).chain(created))
            }
        };
        let skip = (page - 1).saturating_mul(page_size);
        let mut records = Vec::with_capacity(page_size.min(5000) as usize);
        let mut seen = 0u64;
        let mut has_more = false;
        for index in candidates.filter(|i| matches(*i)) {
            if seen >= skip && (records.len() as u64) < page_size {
                records.push(self.record(resource, &overlay, index, false));
            } else if seen >= skip {
                has_more = true;
                if !include_total {
                    break;
                }
            }
            seen += 1;
        }
        Page { records, has_more, total: include_total.then_some(seen) }
    }

    /// Length of the export feed: every generated record, then the change log.
    pub fn export_len(&self, resource: usize) -> u64 {
        self.count + self.overlays[resource].read().unwrap().changes.len() as u64
    }

    /// The feed position at which records modified on or after `ms` start.
    pub fn export_position_for_date(&self, resource: usize, ms: i64) -> u64 {
        let generated = ((ms - EPOCH_MS).max(0) as u64).div_ceil(STEP_MS as u64).max(1) - 1;
        if generated < self.count {
            return generated;
        }
        let overlay = self.overlays[resource].read().unwrap();
        let first_change = overlay.changes.iter().position(|(_, t)| *t >= ms).unwrap_or(overlay.changes.len());
        self.count + first_change as u64
    }

    /// Up to `limit` records of the export feed from `position`, as a JSON array. A record
    /// changed after it was generated is served from the change log only, at its latest change.
    pub fn export(&self, resource: usize, position: u64, limit: usize) -> ExportSlice {
        let overlay = self.overlays[resource].read().unwrap();
        let len = self.count + overlay.changes.len() as u64;
        let mut data = Vec::with_capacity(limit.min(5000) * 512 + 2);
        let mut scratch = Scratch::default();
        data.push(b'[');
        let mut records = 0;
        let mut position = position.min(len);
        while position < len && records < limit {
            position += 1;
            let index = if position <= self.count {
                if overlay.latest_change.contains_key(&position) {
                    continue;
                }
                position
            } else {
                let change = (position - self.count - 1) as usize;
                let index = overlay.changes[change].0;
                if overlay.latest_change.get(&index) != Some(&change) {
                    continue;
                }
                index
            };
            if records > 0 {
                data.push(b',');
            }
            self.render_export(resource, &overlay, index, &mut data, &mut scratch);
            records += 1;
        }
        data.push(b']');
        ExportSlice { data, next_position: position, has_more: position < len }
    }

    /// Creates a record from the fields given; returns it as a get would.
    pub fn create(&self, resource: usize, fields: Map<String, Value>) -> Value {
        let mut overlay = self.overlays[resource].write().unwrap();
        overlay.created += 1;
        let index = self.count + overlay.created;
        let now = now_unix_ms();
        overlay.created_on.insert(index, now);
        Self::log_change(&mut overlay, index, fields, now);
        self.record(resource, &overlay, index, false)
    }

    /// Applies the fields given to record `id`; `None` if there is no such record.
    pub fn update(&self, resource: usize, id: i64, fields: Map<String, Value>) -> Option<Value> {
        let index = self.index_of(resource, id)?;
        let mut overlay = self.overlays[resource].write().unwrap();
        Self::log_change(&mut overlay, index, fields, now_unix_ms());
        Some(self.record(resource, &overlay, index, false))
    }

    fn log_change(overlay: &mut Overlay, index: u64, fields: Map<String, Value>, now: i64) {
        let entry = overlay.fields.entry(index).or_default();
        for (k, v) in fields {
            // A PATCH of a nested object (an address) changes only the fields it names.
            match (entry.get_mut(&k), v) {
                (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
                (_, v) => {
                    entry.insert(k, v);
                }
            }
        }
        let position = overlay.changes.len();
        // Time never goes backwards in the log, so `from` dates find their place by search.
        let now = overlay.changes.last().map_or(now, |(_, t)| now.max(*t));
        overlay.changes.push((index, now));
        overlay.latest_change.insert(index, position);
    }
}

/// Where a record's value goes: a key of the record, or a key of an object under it.
type Path = (&'static str, Option<&'static str>);

/// Where [`Store::stamp`] puts a record's own values.
trait Stamper {
    fn int(&mut self, path: Path, value: i64);
    fn boolean(&mut self, path: Path, value: bool);
    fn text(&mut self, path: Path, value: fmt::Arguments<'_>);
    /// Money: the specs type some amounts as numbers and some as decimal strings.
    fn amount(&mut self, path: Path, value: f64);
    fn address(&mut self, path: Path, value: &Address);
}

/// A postal address, its fields in alphabetical order: serialised directly or through a
/// `serde_json::Map` (sorted, or in insertion order), it reads the same.
#[derive(Serialize)]
struct Address {
    city: &'static str,
    country: &'static str,
    state: &'static str,
    street: Street,
    zip: Zip,
}

/// `"1234 Oak St"`, written without allocating.
struct Street(u64, &'static str);

impl Serialize for Street {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{} {}", self.0, self.1))
    }
}

/// `"78712"`: a city's prefix and two digits.
struct Zip(&'static str, u64);

impl Serialize for Zip {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}{:02}", self.0, self.1))
    }
}

/// Stamps into a copy of the template: a value goes only where the template has one of the
/// same JSON type, so that filling in never breaks the spec's shape.
impl Stamper for Map<String, Value> {
    fn int(&mut self, path: Path, value: i64) {
        put(self, path, json!(value));
    }
    fn boolean(&mut self, path: Path, value: bool) {
        put(self, path, json!(value));
    }
    fn text(&mut self, path: Path, value: fmt::Arguments<'_>) {
        put(self, path, Value::String(value.to_string()));
    }
    fn amount(&mut self, path: Path, value: f64) {
        match slot(self, path) {
            Some(Value::String(_)) => put(self, path, json!(format!("{value:.2}"))),
            Some(Value::Number(_)) => put(self, path, json!(value)),
            _ => {}
        }
    }
    fn address(&mut self, path: Path, value: &Address) {
        put(self, path, serde_json::to_value(value).expect("an address serialises"));
    }
}

fn slot(map: &mut Map<String, Value>, (key, inner): Path) -> Option<&mut Value> {
    match inner {
        None => map.get_mut(key),
        Some(inner) => match map.get_mut(key) {
            Some(Value::Object(o)) => o.get_mut(inner),
            _ => None,
        },
    }
}

fn put(map: &mut Map<String, Value>, path: Path, value: Value) {
    if let Some(slot) = slot(map, path) {
        if JsonType::of(slot) == JsonType::of(&value) {
            *slot = value;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JsonType {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    fn of(value: &Value) -> JsonType {
        match value {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Bool,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }
}

/// Records the places a record is stamped at.
struct Paths(Vec<Path>);

impl Stamper for Paths {
    fn int(&mut self, path: Path, _: i64) {
        self.0.push(path);
    }
    fn boolean(&mut self, path: Path, _: bool) {
        self.0.push(path);
    }
    fn text(&mut self, path: Path, _: fmt::Arguments<'_>) {
        self.0.push(path);
    }
    fn amount(&mut self, path: Path, _: f64) {
        self.0.push(path);
    }
    fn address(&mut self, path: Path, _: &Address) {
        self.0.push(path);
    }
}

/// A template rendered to JSON once, with holes where records put their own values: a record
/// is rendered by copying the text between the holes and writing only what differs, instead of
/// cloning and serialising the whole template.
#[derive(Default)]
struct Stencil {
    /// The JSON before each hole, then after the last one.
    text: Vec<Vec<u8>>,
    holes: Vec<Hole>,
    /// Places asked for that the template lacks: a record's values for them are dropped.
    absent: Vec<Path>,
}

struct Hole {
    path: Path,
    /// The type of the template's value there, which a stamp must match.
    kind: JsonType,
    /// The template's value, which stays if no stamp matches.
    rendered: Vec<u8>,
}

impl Stencil {
    /// The stencil of `template` with holes at `paths` (those the template has).
    fn new(template: &Map<String, Value>, paths: &[Path]) -> Stencil {
        // Each hole is marked by a string no template holds, found again in the rendered text.
        let marker = |n: usize| serde_json::to_vec(&format!("\u{1}hole{n}\u{1}")).expect("JSON serialises");
        let mut marked = template.clone();
        let mut holes = Vec::new();
        let mut absent = Vec::new();
        for &path in paths {
            match slot(&mut marked, path) {
                Some(slot) => {
                    let marker = Value::String(format!("\u{1}hole{}\u{1}", holes.len()));
                    let value = std::mem::replace(slot, marker);
                    let rendered = serde_json::to_vec(&value).expect("JSON serialises");
                    holes.push(Some(Hole { path, kind: JsonType::of(&value), rendered }));
                }
                None => absent.push(path),
            }
        }
        let mut rest = serde_json::to_vec(&Value::Object(marked)).expect("JSON serialises");
        let mut found: Vec<(usize, usize)> = (0..holes.len())
            .map(|n| {
                let needle = marker(n);
                (rest.windows(needle.len()).position(|w| w == needle.as_slice()).expect("each marker once"), n)
            })
            .collect();
        found.sort_unstable();
        let (mut text, mut ordered, mut consumed) = (Vec::new(), Vec::new(), 0);
        for (at, n) in found {
            text.push(rest[consumed..at].to_vec());
            consumed = at + marker(n).len();
            ordered.push(holes[n].take().expect("each hole once"));
        }
        text.push(rest.split_off(consumed));
        Stencil { text, holes: ordered, absent }
    }

    fn hole(&self, path: Path) -> Option<usize> {
        self.holes.iter().position(|h| h.path == path)
    }
}

/// What stamping into a [`Stencil`] reuses from record to record.
#[derive(Default)]
struct Scratch {
    /// The values stamped, as JSON.
    bytes: Vec<u8>,
    /// Per hole of the stencil, where its value is in `bytes`, if stamped.
    filled: Vec<Option<(usize, usize)>>,
    text: String,
}

/// Stamps one record into a [`Stencil`]: each value is written once, as JSON, then the record
/// is put together from the stencil's text.
struct Holes<'a> {
    stencil: &'a Stencil,
    scratch: &'a mut Scratch,
    /// A value had no place in the stencil: the record must be built in full.
    lost: bool,
}

impl<'a> Holes<'a> {
    fn new(stencil: &'a Stencil, scratch: &'a mut Scratch) -> Self {
        scratch.bytes.clear();
        scratch.filled.clear();
        scratch.filled.resize(stencil.holes.len(), None);
        Holes { lost: stencil.text.is_empty(), stencil, scratch }
    }

    /// The hole at `path` if it takes a value of type `kind`; `None` to drop the value.
    fn place(&mut self, path: Path, kind: JsonType) -> Option<usize> {
        match self.stencil.hole(path) {
            Some(n) if self.stencil.holes[n].kind == kind => Some(n),
            Some(_) => None,
            None => {
                if !self.stencil.absent.contains(&path) {
                    self.lost = true;
                }
                None
            }
        }
    }

    fn write(&mut self, hole: usize, value: impl FnOnce(&mut Vec<u8>)) {
        let start = self.scratch.bytes.len();
        value(&mut self.scratch.bytes);
        self.scratch.filled[hole] = Some((start, self.scratch.bytes.len()));
    }

    /// Appends the record to `out`; `false` (and nothing appended) if it must be built in full.
    fn finish(self, out: &mut Vec<u8>) -> bool {
        if self.lost {
            return false;
        }
        let (stencil, scratch) = (self.stencil, &*self.scratch);
        out.extend_from_slice(&stencil.text[0]);
        for ((hole, filled), after) in stencil.holes.iter().zip(&scratch.filled).zip(&stencil.text[1..]) {
            match filled {
                Some((start, end)) => out.extend_from_slice(&scratch.bytes[*start..*end]),
                None => out.extend_from_slice(&hole.rendered),
            }
            out.extend_from_slice(after);
        }
        true
    }
}

impl Stamper for Holes<'_> {
    fn int(&mut self, path: Path, value: i64) {
        if let Some(n) = self.place(path, JsonType::Number) {
            self.write(n, |out| serde_json::to_writer(out, &value).expect("JSON serialises"));
        }
    }
    fn boolean(&mut self, path: Path, value: bool) {
        if let Some(n) = self.place(path, JsonType::Bool) {
            self.write(n, |out| out.extend_from_slice(if value { b"true" } else { b"false" }));
        }
    }
    fn text(&mut self, path: Path, value: fmt::Arguments<'_>) {
        if let Some(n) = self.place(path, JsonType::String) {
            let mut text = std::mem::take(&mut self.scratch.text);
            text.clear();
            fmt::write(&mut text, value).expect("formatting into a String");
            self.write(n, |out| serde_json::to_writer(out, text.as_str()).expect("JSON serialises"));
            self.scratch.text = text;
        }
    }
    fn amount(&mut self, path: Path, value: f64) {
        let kind = self.stencil.hole(path).map(|n| self.stencil.holes[n].kind);
        match kind {
            Some(JsonType::String) => self.text(path, format_args!("{value:.2}")),
            Some(JsonType::Number) => {
                if let Some(n) = self.place(path, JsonType::Number) {
                    self.write(n, |out| serde_json::to_writer(out, &value).expect("JSON serialises"));
                }
            }
            Some(_) => {}
            None => {
                self.place(path, JsonType::Number);
            }
        }
    }
    fn address(&mut self, path: Path, value: &Address) {
        if let Some(n) = self.place(path, JsonType::Object) {
            self.write(n, |out| serde_json::to_writer(out, value).expect("JSON serialises"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stencils_render_exactly_the_records_built_in_full() {
        let store = Store::new(Catalogue::embedded(), 42, 1000);
        let customers = store.find("crm", "customers").unwrap();
        let mut changed = Map::new();
        changed.insert("name".into(), json!("Changed \"name\" \u{1}"));
        store.update(customers, store.id_of(customers, 7), changed).unwrap();
        store.create(customers, Map::new());
        for resource in 0..store.resources.len() {
            let overlay = store.overlays[resource].read().unwrap();
            // Records as generated take the fast path…
            let mut scratch = Scratch::default();
            let mut holes = Holes::new(&store.resources[resource].export_stencil, &mut scratch);
            store.stamp(resource, &overlay, 1, &mut holes);
            assert!(holes.finish(&mut Vec::new()), "resource {resource} has a stencil for every value");
            for index in [1, 2, 3, 5, 7, 10, 333, 999, 1000, 1001] {
                // …changed ones are built in full; either way the text is the record's.
                let mut out = Vec::new();
                store.render_export(resource, &overlay, index, &mut out, &mut Scratch::default());
                let full = serde_json::to_vec(&store.record(resource, &overlay, index, true)).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(full).unwrap(), "{resource} {index}");
            }
        }
        // A page is a JSON array of exactly those records.
        let slice = store.export(customers, 0, 50);
        let page: Vec<Value> = serde_json::from_slice(&slice.data).unwrap();
        // Record 7 moved to the change log: 51 positions for 50 records.
        assert_eq!((page.len(), slice.next_position, slice.has_more), (50, 51, true));
        let overlay = store.overlays[customers].read().unwrap();
        assert_eq!(
            page[9],
            serde_json::from_slice::<Value>(&serde_json::to_vec(&store.record(customers, &overlay, 11, true)).unwrap())
                .unwrap()
        );
        drop(overlay);
        let tail = store.export(customers, 995, 50);
        let tail: Vec<Value> = serde_json::from_slice(&tail.data).unwrap();
        // 996..=1000, then the change log: record 7 at its change, then the new record.
        assert_eq!(tail.len(), 7);
        assert_eq!(tail[5]["name"], "Changed \"name\" \u{1}");
    }
}
