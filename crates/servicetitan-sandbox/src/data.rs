//! Generated data: records of the core resources, computed from (seed, resource, index) on demand
//! so that a million records cost no memory, in the shapes of the official specs (each resource's
//! template is a valid instance of its spec schema, filled in per record). Records created or
//! changed through POST/PATCH live in a small in-memory overlay and join the export feed's tail.

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::{json, Map, Value};

use crate::catalogue::Catalogue;
use crate::util::{format_rfc3339_ms, mix_all, now_unix_ms};

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

/// A slice of the export feed and the position after it.
pub struct ExportSlice {
    pub records: Vec<Value>,
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
                id_base: (n as i64 + 1) * 100_000_000,
            });
        }
        let overlays = resources.iter().map(|_| RwLock::new(Overlay::default())).collect();
        Store { resources, count, seed, overlays }
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
        let h = mix_all(&[self.seed, resource as u64, index]);
        let modified = Self::modified_ms(overlay, index);
        let created = overlay.created_on.get(&index).copied().unwrap_or(modified - (h % (400 * 86_400_000)) as i64);
        set(&mut m, "id", json!(self.id_of(resource, index)));
        set(&mut m, "active", json!(Self::active(overlay, index)));
        set(&mut m, "createdOn", json!(format_rfc3339_ms(created)));
        set(&mut m, "modifiedOn", json!(format_rfc3339_ms(modified)));
        set(&mut m, "createdById", json!(1 + (h >> 8) % 50));
        let person = format!("{} {}", pick(FIRST, h >> 3), pick(LAST, h >> 11));
        let (city, state, zip) = pick(CITIES, h >> 17);
        let address = json!({
            "street": format!("{} {}", 100 + (h >> 21) % 9900, pick(STREETS, h >> 35)),
            "city": city, "state": state, "zip": format!("{zip}{:02}", (h >> 41) % 100), "country": "USA",
        });
        // Related records point at generated records of the other resources.
        let related = |salt: u64, resource: Kind| -> i64 {
            let n = RESOURCES.iter().position(|s| s.kind == resource).unwrap();
            let base = self.resources[n].id_base;
            base + 1 + (mix_all(&[self.seed, index, salt]) % self.count.max(1)) as i64
        };
        match r.spec.kind {
            Kind::Customers => {
                let commercial = h.is_multiple_of(5);
                let name = if commercial {
                    format!("{} {}", pick(LAST, h >> 11), pick(TRADES, h >> 45)) + " LLC"
                } else {
                    person
                };
                set(&mut m, "name", json!(name));
                set(&mut m, "type", json!(if commercial { "Commercial" } else { "Residential" }));
                set(&mut m, "address", address);
                set_amount(&mut m, "balance", ((h >> 13) % 100_000) as f64 / 100.0);
            }
            Kind::Locations => {
                set(&mut m, "name", json!(format!("{person} residence")));
                set(&mut m, "customerId", json!(related(1, Kind::Customers)));
                set(&mut m, "address", address);
            }
            Kind::Jobs => {
                set(&mut m, "jobNumber", json!(format!("{}", 10_000 + index)));
                set(&mut m, "customerId", json!(related(1, Kind::Customers)));
                set(&mut m, "locationId", json!(related(2, Kind::Locations)));
                set(&mut m, "businessUnitId", json!(related(3, Kind::BusinessUnits)));
                set(&mut m, "jobStatus", json!(pick(JOB_STATUSES, h >> 5)));
                set(&mut m, "priority", json!(pick(&["Low", "Normal", "High", "Urgent"], h >> 9)));
                set(&mut m, "summary", json!(format!("{} service call", pick(TRADES, h >> 45))));
            }
            Kind::Invoices => {
                let total = ((h >> 13) % 500_000) as f64 / 100.0;
                set(&mut m, "referenceNumber", json!(format!("INV-{}", 50_000 + index)));
                set(&mut m, "invoiceDate", json!(format_rfc3339_ms(modified)));
                set_amount(&mut m, "total", total);
                set_amount(&mut m, "balance", if h.is_multiple_of(3) { total } else { 0.0 });
                if let Some(Value::Object(c)) = m.get_mut("customer") {
                    set(c, "id", json!(related(1, Kind::Customers)));
                    set(c, "name", json!(person));
                }
                if let Some(Value::Object(j)) = m.get_mut("job") {
                    set(j, "id", json!(related(4, Kind::Jobs)));
                    set(j, "number", json!(format!("{}", 10_000 + index)));
                }
            }
            Kind::Employees | Kind::Technicians => {
                set(&mut m, "name", json!(person));
                set(&mut m, "userId", json!(1000 + index as i64));
                set(&mut m, "email", json!(format!("{}.{}@example.com", pick(FIRST, h >> 3), index).to_lowercase()));
                set_amount(&mut m, "hourlyRate", 20.0 + ((h >> 7) % 4000) as f64 / 100.0);
            }
            Kind::BusinessUnits => {
                let name = format!("{} {}", pick(TRADES, h >> 3), pick(CITIES, h >> 17).0);
                set(&mut m, "officialName", json!(format!("{name} Inc.")));
                set(&mut m, "name", json!(name));
            }
        }
        if let Some(fields) = overlay.fields.get(&index) {
            for (k, v) in fields {
                if m.contains_key(k) {
                    m.insert(k.clone(), v.clone());
                }
            }
        }
        Value::Object(m)
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

    /// Up to `limit` records of the export feed from `position`. A record changed after it was
    /// generated is served from the change log only, at its latest change.
    pub fn export(&self, resource: usize, position: u64, limit: usize) -> ExportSlice {
        let overlay = self.overlays[resource].read().unwrap();
        let len = self.count + overlay.changes.len() as u64;
        let mut records = Vec::with_capacity(limit.min(5000));
        let mut position = position.min(len);
        while position < len && records.len() < limit {
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
            records.push(self.record(resource, &overlay, index, true));
        }
        ExportSlice { records, next_position: position, has_more: position < len }
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

/// Sets `key` only where the template has it with a value of the same JSON type, so that filling
/// in never breaks the spec's shape.
fn set(map: &mut Map<String, Value>, key: &str, value: Value) {
    if let Some(slot) = map.get_mut(key) {
        let same_type = matches!(
            (&*slot, &value),
            (Value::String(_), Value::String(_))
                | (Value::Number(_), Value::Number(_))
                | (Value::Bool(_), Value::Bool(_))
                | (Value::Object(_), Value::Object(_))
        );
        if same_type {
            *slot = value;
        }
    }
}

/// Money: the specs type some amounts as numbers and some as decimal strings.
fn set_amount(map: &mut Map<String, Value>, key: &str, amount: f64) {
    match map.get(key) {
        Some(Value::String(_)) => set(map, key, json!(format!("{amount:.2}"))),
        Some(Value::Number(_)) => set(map, key, json!(amount)),
        _ => {}
    }
}
