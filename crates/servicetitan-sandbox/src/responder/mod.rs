//! Answers for every documented operation that the hand-written routes do not serve, driven
//! by the catalogue: reads answer deterministic records rendered from the response schema and
//! (seed, resource, parents, index); lists page them, `GET …/{id}` returns the record the list
//! shows under that id (unknown ids are 404), export feeds hand out continuation tokens, and
//! downloads answer bytes. Writes check their body against the request schema and answer the
//! documented status with a document of the response schema that carries the fields sent.
//!
//! Ids of these generated records are their positions: record `i` of a list has id `i` (or a
//! GUID or string carrying `i`, as the record schema types its `id`), so `1` names the first
//! record of any list with records.

mod params;
mod plan;

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::{Map, Value};

use crate::catalogue::{Catalogue, FieldKind, Shape};
use crate::config::SandboxConfig;
use crate::data::{implemented_operations, Store, EPOCH_MS, STEP_MS};
use crate::http::{bool_param, int_param, json_response, param, Body, Problem};
use crate::util::{format_rfc3339_ms, mix, mix_all, parse_date_ms};
use plan::{Answer, IdKind, Ids, Owner, Plan};

pub(crate) use params::violations_problem;

/// Where redirects of download operations point: the sandbox serves the file there.
const FILES: &str = "/__sandbox/files/";

/// The media type of every file the sandbox serves.
const FILE_TYPE: &str = "application/octet-stream";

/// Records of a list that hangs under another record (`…/customers/{id}/notes`): a few per
/// parent, so that every parent has some.
const MAX_NESTED: u64 = 5;

/// One API request, as far as the catalogue-driven answers need it.
pub(crate) struct Call<'a> {
    pub method: &'a Method,
    /// The concrete path without the leading `/`, e.g. `crm/v2/tenant/1001/tags`.
    pub path: &'a str,
    pub pairs: &'a [(String, String)],
    pub body: &'a [u8],
    /// The request's Accept header (`*/*` when it has none).
    pub accept: &'a str,
}

pub(crate) struct Responder {
    catalogue: &'static Catalogue,
    seed: u64,
    records: u64,
    export_page_size: usize,
    /// Operations answered by the hand-written routes instead, by catalogue index.
    hand_written: Vec<bool>,
    /// Built on an operation's first call and kept: shapes are compiled once.
    plans: Vec<OnceLock<Plan>>,
}

impl Responder {
    pub(crate) fn new(catalogue: &'static Catalogue, config: &SandboxConfig) -> Responder {
        let mut hand_written = vec![false; catalogue.operations.len()];
        for (method, template) in implemented_operations() {
            if let Some(index) = catalogue.operation_index(method, &template) {
                hand_written[index] = true;
            }
        }
        for (index, op) in catalogue.operations.iter().enumerate() {
            // The reporting API has hand-written routes for all of its operations.
            hand_written[index] |= op.module == "reporting";
        }
        Responder {
            catalogue,
            seed: config.seed,
            records: config.records,
            export_page_size: config.export_page_size,
            hand_written,
            plans: catalogue.operations.iter().map(|_| OnceLock::new()).collect(),
        }
    }

    /// Whether operation `index` is answered here (rather than by a hand-written route).
    pub(crate) fn serves(&self, index: usize) -> bool {
        !self.hand_written[index]
    }

    fn plan(&self, index: usize) -> &Plan {
        self.plans[index].get_or_init(|| plan::build(self.catalogue, index))
    }

    /// Answers operation `index`. Checks run in the service's order: path, query and body
    /// binding (400), then the addressed record (404).
    pub(crate) fn answer(&self, store: &Store, index: usize, call: &Call) -> Result<Response<Body>, Problem> {
        match self.respond(store, index, call) {
            // A few operations document their 400 as a bare JSON string, not a problem.
            Err(problem) if problem.status == StatusCode::BAD_REQUEST && self.plan(index).text_errors => {
                Ok(text_problem(problem))
            }
            other => other,
        }
    }

    fn respond(&self, store: &Store, index: usize, call: &Call) -> Result<Response<Body>, Problem> {
        let plan = self.plan(index);
        let segments: Vec<&str> = call.path.split('/').collect();
        params::check_path(&plan.path, &segments)?;
        params::check_query(&plan.query, call.pairs)?;
        let body = match plan.body {
            Some(schema) if *call.method != Method::GET => Some(params::check_body(self.catalogue, schema, call.body)?),
            _ => None,
        };
        let owner_index = match &plan.owner {
            Some(owner) => self.owned_record(store, owner, &segments)?,
            None => None,
        };
        match &plan.answer {
            Answer::Page { envelope, record } => self.page(plan, envelope, record, &segments, call.pairs),
            Answer::Export { envelope, record } => self.export(index, plan, envelope, record, &segments, call.pairs),
            Answer::Record(shape) => {
                let list = plan.source.expect("records have a list");
                let parents = self.parents(list, &segments);
                // The owner check found it (records of hand-written lists never get here).
                let index = owner_index.unwrap_or(1);
                let record = self.record(shape, &plan.ids, plan.key, parents, index);
                Ok(json_response(plan.status, &record))
            }
            Answer::Document(shape) => {
                let seed = mix_all(&[self.seed, plan.key, self.parents(index, &segments)]);
                let mut value = shape.render(seed);
                if let Some(body) = &body {
                    self.carry_fields(plan, body, &mut value);
                }
                if let (Some(owner), Value::Object(fields)) = (&plan.owner, &mut value) {
                    if segments.len() == owner.segment + 1 {
                        let field = &self.plan(owner.list).ids.field;
                        set_id(fields, field, shape.field(field), segments[owner.segment]);
                    }
                }
                Ok(json_response(plan.status, &value))
            }
            Answer::Empty => Ok(empty(plan.status)),
            Answer::Binary | Answer::Redirect if !accepts(call.accept, FILE_TYPE) => Err(Problem::new(
                StatusCode::NOT_ACCEPTABLE,
                format!("This operation answers {FILE_TYPE}, which the Accept header ({}) does not take.", call.accept),
            )),
            Answer::Binary => {
                let seed = mix_all(&[self.seed, plan.key, self.parents(index, &segments)]);
                Ok(file_response(index, seed, is_audio(&self.catalogue.operations[index].path)))
            }
            Answer::Redirect => {
                let seed = mix_all(&[self.seed, plan.key, self.parents(index, &segments), query_hash(call.pairs)]);
                let mut response = empty(StatusCode::FOUND);
                let location = format!("{FILES}{index}/{seed:016x}");
                response.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("ASCII"));
                Ok(response)
            }
        }
    }

    /// `GET /__sandbox/files/{operation}/{seed}`: the file a download redirect points to.
    pub(crate) fn file(&self, name: &str) -> Option<Response<Body>> {
        let (index, seed) = name.split_once('/')?;
        let index: usize = index.parse().ok().filter(|&i| i < self.catalogue.operations.len())?;
        let seed = u64::from_str_radix(seed, 16).ok()?;
        Some(file_response(index, seed, false))
    }

    /// Hash of the concrete values of operation `index`'s path parameters (tenant aside): the
    /// parent records a nested list or document belongs to.
    fn parents(&self, index: usize, segments: &[&str]) -> u64 {
        let values = self.plan(index).path.iter().map(|p| segments.get(p.segment).copied().unwrap_or(""));
        values.fold(0, |h, v| mix(h ^ plan::key_of(v)))
    }

    /// How many records list `list` has under the parents named in `segments`.
    fn count(&self, list: usize, segments: &[&str]) -> u64 {
        let plan = self.plan(list);
        if plan.path.is_empty() {
            self.records
        } else {
            (1 + mix(plan.key ^ self.parents(list, segments)) % MAX_NESTED).min(self.records)
        }
    }

    /// Record `index` (1-based) of a list, in `shape`.
    fn record(&self, shape: &Shape, ids: &Ids, key: u64, parents: u64, index: u64) -> Value {
        let seed = mix_all(&[self.seed, key, parents, index]);
        let mut value = shape.render(seed);
        if let Value::Object(fields) = &mut value {
            set_id(fields, &ids.field, shape.field(&ids.field), &id_text(ids.kind, index));
            // Records change one minute apart, oldest first, as the export feeds expect.
            let modified = EPOCH_MS + index as i64 * STEP_MS;
            if shape.field("modifiedOn") == Some(FieldKind::DateTime) {
                fields.insert("modifiedOn".into(), Value::String(format_rfc3339_ms(modified)));
            }
            if shape.field("createdOn") == Some(FieldKind::DateTime) {
                let created = modified - (seed % (400 * 86_400_000)) as i64;
                fields.insert("createdOn".into(), Value::String(format_rfc3339_ms(created)));
            }
            if shape.field("active") == Some(FieldKind::Boolean) {
                fields.insert("active".into(), Value::Bool(!index.is_multiple_of(10)));
            }
        }
        value
    }

    /// The record a path addresses under a list (`…/things/{id}…`): 404 if the list has no
    /// record with that id. Returns the record's index for generated lists.
    fn owned_record(&self, store: &Store, owner: &Owner, segments: &[&str]) -> Result<Option<u64>, Problem> {
        let list = &self.catalogue.operations[owner.list];
        let text = segments.get(owner.segment).copied().unwrap_or("");
        let name = list.path.rsplit('/').next().unwrap_or("");
        let missing = || Problem::not_found(format!("{} with id {text} was not found.", singular(name)));
        if self.hand_written[owner.list] {
            let Some(resource) = store.find(&list.module, name) else {
                return Ok(None);
            };
            let id = text.parse::<i64>().map_err(|_| missing())?;
            return store.get(resource, id).map(|_| None).ok_or_else(missing);
        }
        let index = parse_id(self.plan(owner.list).ids.kind, text).ok_or_else(missing)?;
        if (1..=self.count(owner.list, segments)).contains(&index) {
            Ok(Some(index))
        } else {
            Err(missing())
        }
    }

    fn page(
        &self,
        plan: &Plan,
        envelope: &Shape,
        record: &Shape,
        segments: &[&str],
        pairs: &[(String, String)],
    ) -> Result<Response<Body>, Problem> {
        let page = int_param(pairs, "page", 1, 1..=i64::from(i32::MAX))? as u64;
        let page_size = int_param(pairs, "pageSize", 50, 1..=5000)? as u64;
        let include_total = bool_param(pairs, "includeTotal")?;
        let list = plan.source.expect("pages have a list");
        let parents = self.parents(list, segments);
        let count = self.count(list, segments);
        let start = (page - 1).saturating_mul(page_size).min(count);
        let end = start.saturating_add(page_size).min(count);
        let records: Vec<Value> =
            (start + 1..=end).map(|i| self.record(record, &plan.ids, plan.key, parents, i)).collect();
        if envelope.is_array() {
            return Ok(json_response(plan.status, &records));
        }
        let mut value = envelope.render(mix_all(&[self.seed, plan.key, parents]));
        if let Value::Object(fields) = &mut value {
            let total =
                if include_total || !envelope.nullable("totalCount") { Value::from(count) } else { Value::Null };
            for (name, kind, value) in [
                ("page", FieldKind::Integer, Value::from(page)),
                ("pageSize", FieldKind::Integer, Value::from(page_size)),
                ("hasMore", FieldKind::Boolean, Value::Bool(end < count)),
                ("totalCount", FieldKind::Integer, total),
            ] {
                if envelope.field(name) == Some(kind) {
                    fields.insert(name.into(), value);
                }
            }
            fields.insert("data".into(), Value::Array(records));
        }
        Ok(json_response(plan.status, &value))
    }

    fn export(
        &self,
        index: usize,
        plan: &Plan,
        envelope: &Shape,
        record: &Shape,
        segments: &[&str],
        pairs: &[(String, String)],
    ) -> Result<Response<Body>, Problem> {
        let list = plan.source.expect("exports have a source");
        let len = self.count(list, segments);
        let position = match param(pairs, "from").map(str::trim) {
            None | Some("") => 0,
            Some(from) => match self.parse_token(index, from) {
                Some(position) => position.min(len),
                None => match parse_date_ms(from) {
                    // The first record modified on or after the date.
                    Some(ms) => (((ms - EPOCH_MS).max(0) as u64).div_ceil(STEP_MS as u64).max(1) - 1).min(len),
                    None => {
                        return Err(Problem::bad_request(
                            "from",
                            format!("The value '{from}' is neither a continuation token of this export nor a date."),
                        ))
                    }
                },
            },
        };
        let end = position.saturating_add(self.export_page_size as u64).min(len);
        let parents = self.parents(list, segments);
        let records: Vec<Value> =
            (position + 1..=end).map(|i| self.record(record, &plan.ids, plan.key, parents, i)).collect();
        let mut value = envelope.render(mix_all(&[self.seed, plan.key, parents]));
        if let Value::Object(fields) = &mut value {
            fields.insert("hasMore".into(), Value::Bool(end < len));
            fields.insert("continueFrom".into(), Value::String(self.token(index, end)));
            fields.insert("data".into(), Value::Array(records));
        }
        Ok(json_response(plan.status, &value))
    }

    fn token(&self, index: usize, position: u64) -> String {
        let check = mix_all(&[self.seed, index as u64, position]) & 0xFFFF_FFFF;
        URL_SAFE_NO_PAD.encode(format!("{index}:{position}:{check:08x}"))
    }

    fn parse_token(&self, index: usize, token: &str) -> Option<u64> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(token).ok()?).ok()?;
        let position: u64 = text.split(':').nth(1)?.parse().ok()?;
        (self.token(index, position) == token).then_some(position)
    }

    /// Lays the fields a write sent over its answer where the response schema has them with a
    /// matching type: a created or updated resource shows what was sent.
    fn carry_fields(&self, plan: &Plan, body: &Value, value: &mut Value) {
        let (Value::Object(sent), Value::Object(out), Some(schema)) = (body, value, plan.response) else {
            return;
        };
        let Some(properties) = self.catalogue.resolve(schema).get("properties").and_then(Value::as_object) else {
            return;
        };
        for (key, field) in sent {
            if let (Some(slot), Some(property)) = (out.get_mut(key), properties.get(key)) {
                if self.catalogue.validate(property, field).is_ok() {
                    *slot = field.clone();
                }
            }
        }
    }
}

/// A problem as the JSON string some operations document for their 400s.
fn text_problem(problem: Problem) -> Response<Body> {
    let details: Vec<String> =
        problem.errors.iter().map(|(field, messages)| format!("{field}: {}", messages.join(" "))).collect();
    json_response(problem.status, &Value::String(format!("{} {}", problem.title, details.join("; "))))
}

/// Sets the id field `name` to the id written as `text`, where it has a fitting type.
fn set_id(fields: &mut Map<String, Value>, name: &str, kind: Option<FieldKind>, text: &str) {
    let value = match kind {
        Some(FieldKind::Integer) => match text.parse::<i64>() {
            Ok(n) => Value::from(n),
            Err(_) => return,
        },
        Some(FieldKind::Guid) if params::is_guid(text) => Value::String(text.to_owned()),
        Some(FieldKind::String) => Value::String(text.to_owned()),
        _ => return,
    };
    fields.insert(name.into(), value);
}

fn id_text(ids: IdKind, index: u64) -> String {
    match ids {
        IdKind::Integer | IdKind::Text => index.to_string(),
        IdKind::Guid => format!("00000000-0000-4000-8000-{index:012x}"),
    }
}

/// The record index an id names, if it is one this sandbox hands out.
fn parse_id(ids: IdKind, text: &str) -> Option<u64> {
    match ids {
        IdKind::Integer | IdKind::Text => text.parse().ok(),
        IdKind::Guid => {
            let last = text.strip_prefix("00000000-0000-4000-8000-")?;
            (last.len() == 12).then(|| u64::from_str_radix(last, 16).ok())?
        }
    }
}

/// `business-units` → `Business unit`, for messages.
fn singular(plural: &str) -> String {
    let name = plural.strip_suffix('s').unwrap_or(plural).replace('-', " ");
    let mut chars = name.chars();
    chars.next().map(|c| c.to_uppercase().collect::<String>() + chars.as_str()).unwrap_or_else(|| "Record".into())
}

fn query_hash(pairs: &[(String, String)]) -> u64 {
    pairs.iter().fold(0, |h, (k, v)| mix(h ^ plan::key_of(k) ^ plan::key_of(v).rotate_left(17)))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// Whether an Accept header takes `media` (`type/subtype`): listed itself, as `type/*` or as
/// `*/*`, with a quality above zero.
fn accepts(accept: &str, media: &str) -> bool {
    let kind = media.split('/').next().unwrap_or("");
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.replace(' ', "").to_ascii_lowercase();
            p.strip_prefix("q=").and_then(|q| q.parse::<f32>().ok()).is_some_and(|q| q <= 0.0)
        });
        !refused && (name == "*/*" || name == media || name == format!("{kind}/*"))
    })
}

fn is_audio(path: &str) -> bool {
    path.ends_with("/recording") || path.ends_with("/voicemail")
}

/// A download: one second of 8 kHz mono audio for recordings and voicemails, otherwise a few
/// KiB of bytes, all derived from `seed`.
fn file_response(index: usize, seed: u64, audio: bool) -> Response<Body> {
    let bytes = if audio { wav(seed) } else { (0..1024 + seed % 3072).map(|i| mix(seed ^ i) as u8).collect() };
    let mut response = Response::new(Body::new(Bytes::from(bytes)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    let disposition = format!("attachment; filename=\"{index}-{seed:016x}.{}\"", if audio { "wav" } else { "bin" });
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ASCII"));
    response
}

fn wav(seed: u64) -> Vec<u8> {
    const RATE: u32 = 8000;
    let period = 10 + (seed % 30) as u32;
    let samples: Vec<u8> = (0..RATE).map(|i| if i % period < period / 2 { 96 } else { 160 }).collect();
    let mut out = Vec::with_capacity(44 + samples.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + RATE).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    // PCM, mono, 8 kHz, 8 bits per sample.
    for field in [16u32.to_le_bytes().as_slice(), &1u16.to_le_bytes(), &1u16.to_le_bytes()] {
        out.extend_from_slice(field);
    }
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&samples);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for ids in [IdKind::Integer, IdKind::Guid, IdKind::Text] {
            for index in [1, 42, 1_000_000] {
                assert_eq!(parse_id(ids, &id_text(ids, index)), Some(index));
            }
        }
        assert!(params::is_guid(&id_text(IdKind::Guid, 7)));
        assert_eq!(parse_id(IdKind::Guid, "10000000-0000-4000-8000-000000000001"), None);
        assert_eq!(parse_id(IdKind::Integer, "x"), None);
    }

    #[test]
    fn recordings_are_wav() {
        let bytes = wav(3);
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(&bytes[8..12], b"WAVE");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize, bytes.len() - 8);
    }

    #[test]
    fn accept_headers_take_files_by_type_or_wildcard() {
        for accept in
            ["*/*", "application/octet-stream", "application/*", "application/json, */*;q=0.05", "AUDIO/MPEG, */*"]
        {
            assert!(accepts(accept, FILE_TYPE), "{accept}");
        }
        for accept in ["application/json", "text/*", "*/*;q=0", "application/octet-stream; q=0.0", "*/*; Q=0"] {
            assert!(!accepts(accept, FILE_TYPE), "{accept}");
        }
    }

    #[test]
    fn singular_names() {
        assert_eq!(singular("business-units"), "Business unit");
        assert_eq!(singular(""), "Record");
    }
}
