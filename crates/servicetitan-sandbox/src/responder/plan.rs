//! What the sandbox answers for one operation, worked out once from the catalogue: the kind of
//! answer (page of records, export feed, record by id, plain document, bytes, nothing), the
//! compiled shapes it renders, and the parameters it checks.

use http::StatusCode;
use serde_json::{json, Value};

use super::params::{path_params, query_params, PathParam, QueryParam};
use crate::catalogue::{Catalogue, FieldKind, Operation, Shape};

/// How a record's id is written, after the list's record schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IdKind {
    /// `id` is an integer: record `i` has id `i`.
    Integer,
    /// `id` is a GUID that carries `i` in its last group.
    Guid,
    /// `id` is a string: the decimal `i`.
    Text,
}

/// How a list's records carry their ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ids {
    pub kind: IdKind,
    /// The record field holding the id: `id`, or the name of the path parameter that takes
    /// it where the record has a field of that name (`…/tasks/{taskId}` → `taskId`).
    pub field: String,
}

/// The list a record-level path (`…/things/{id}`, `…/things/{id}/more`) belongs to.
#[derive(Debug, Clone)]
pub(super) struct Owner {
    /// Index of the list operation (`GET …/things`).
    pub list: usize,
    /// Index of the path segment holding the id.
    pub segment: usize,
}

pub(super) enum Answer {
    /// One document (or, for writes, the resource as changed).
    Document(Shape),
    /// A page of a list: the envelope (or a bare array) and the records.
    Page { envelope: Shape, record: Shape },
    /// An export feed slice with a continuation token.
    Export { envelope: Shape, record: Shape },
    /// The record with the id in the path, as the owning list shows it.
    Record(Shape),
    /// A status without a body.
    Empty,
    /// Bytes of a non-JSON type.
    Binary,
    /// A redirect to the file's location, the only answer some download operations document.
    Redirect,
}

pub(super) struct Plan {
    pub status: StatusCode,
    pub answer: Answer,
    pub path: Vec<PathParam>,
    pub query: Vec<QueryParam>,
    /// The request body schema, when the operation takes one.
    pub body: Option<&'static Value>,
    /// The success response schema, for fitting a write's fields into its answer.
    pub response: Option<&'static Value>,
    /// Identifies the resource: list, get-by-id and export of the same records share it.
    pub key: u64,
    /// Records of a list or export: the list's own template (for its key and its parents).
    pub source: Option<usize>,
    /// Id writing of the records this operation lists, exports or returns.
    pub ids: Ids,
    /// The operation documents its 400 answers as a JSON string rather than a problem.
    pub text_errors: bool,
    /// For paths under a list's record (`…/things/{id}…`): which list and which segment.
    pub owner: Option<Owner>,
}

/// Whether `op` pages with `page` and `pageSize`.
pub(super) fn is_list(op: &Operation) -> bool {
    op.method == "GET" && op.param("page").is_some() && op.param("pageSize").is_some()
}

/// FNV-1a of a template: a stable key per resource.
pub(super) fn key_of(template: &str) -> u64 {
    template.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

pub(super) fn build(catalogue: &'static Catalogue, index: usize) -> Plan {
    let op = &catalogue.operations[index];
    let success = op.responses.iter().find(|(code, _)| code.starts_with('2'));
    let status = success.and_then(|(code, _)| code.parse().ok()).and_then(|c| StatusCode::from_u16(c).ok());
    let schema = success.map(|(_, s)| s).filter(|s| !s.is_null());
    let owner = owner_of(catalogue, op);
    let mut plan = Plan {
        status: status.unwrap_or(StatusCode::OK),
        answer: Answer::Empty,
        path: path_params(catalogue, op),
        query: query_params(catalogue, op),
        body: op.body.as_ref(),
        response: schema,
        key: key_of(&op.path),
        source: None,
        ids: Ids { kind: IdKind::Integer, field: "id".into() },
        owner: owner.clone(),
        text_errors: op.responses.get("400").is_some_and(|s| catalogue.resolve(s)["type"] == "string"),
    };
    if op.method != "GET" {
        plan.answer = schema.map_or(Answer::Empty, |s| Answer::Document(catalogue.shape(s)));
        return plan;
    }
    // Downloads that document a redirect answer it, also where the spec lists a bodiless 200
    // beside it (installed equipment's attachments): the file lives elsewhere.
    if schema.is_none() && op.responses.contains_key("302") {
        plan.status = StatusCode::FOUND;
        plan.answer = Answer::Redirect;
        return plan;
    }
    if success.is_some() && schema.is_none() {
        plan.answer = Answer::Binary;
        return plan;
    }
    // The specs leave a few reads without any success answer: answer the smallest document of
    // their kind (records that carry an id).
    let invented;
    let schema = match schema {
        Some(schema) => schema,
        None => {
            invented = invented_schema(op);
            &invented
        }
    };
    let shape = catalogue.shape(schema);
    if is_list(op) {
        let record = if shape.is_array() { shape.part("") } else { shape.part("data").and_then(|d| d.part("")) };
        if let Some(record) = record {
            plan.ids = record_ids(catalogue, &op.path, &record);
            plan.source = Some(index);
            plan.answer = Answer::Page { envelope: shape, record };
            return plan;
        }
    } else if op.is_export() && shape.field("continueFrom").is_some() {
        if let Some(record) = shape.part("data").and_then(|d| d.part("")) {
            // `…/export/things` serves the same records as the list `…/things`.
            let list = op.path.split('/').filter(|s| *s != "export").collect::<Vec<_>>().join("/");
            let source = catalogue.operation_index("GET", &list).filter(|&i| is_list(&catalogue.operations[i]));
            plan.source = Some(source.unwrap_or(index));
            plan.key = key_of(&catalogue.operations[plan.source.unwrap_or(index)].path);
            plan.ids = record_ids(catalogue, &catalogue.operations[plan.source.unwrap_or(index)].path, &record);
            plan.answer = Answer::Export { envelope: shape, record };
            return plan;
        }
    }
    match &owner {
        // `GET …/things/{id}`: the record as the list `GET …/things` shows it.
        Some(owner) if op.path.split('/').count() == owner.segment + 1 => {
            let list = &catalogue.operations[owner.list];
            plan.key = key_of(&list.path);
            plan.source = Some(owner.list);
            plan.ids = list_ids(catalogue, list);
            plan.answer = Answer::Record(shape);
        }
        _ => plan.answer = Answer::Document(shape),
    }
    plan
}

/// How the records of the list `list` write their ids.
fn list_ids(catalogue: &Catalogue, list: &Operation) -> Ids {
    let resolved = list.responses.get("200").map(|s| catalogue.resolve(s));
    let items = resolved.and_then(|r| r.pointer("/properties/data/items").or_else(|| r.get("items")));
    let record = items.map_or_else(|| catalogue.shape(&Value::Null), |items| catalogue.shape(items));
    record_ids(catalogue, &list.path, &record)
}

fn record_ids(catalogue: &Catalogue, list: &str, record: &Shape) -> Ids {
    let prefix = format!("{list}/{{");
    let named = catalogue
        .operations
        .iter()
        .filter_map(|op| op.path.strip_prefix(&prefix)?.split('}').next())
        .find(|name| record.field(name).is_some());
    let field = named.unwrap_or("id").to_owned();
    let kind = match record.field(&field) {
        Some(FieldKind::Guid) => IdKind::Guid,
        Some(FieldKind::String) => IdKind::Text,
        _ => IdKind::Integer,
    };
    Ids { kind, field }
}

/// The list whose record a path addresses: the longest `L/{p}` prefix of the template where
/// `GET L` is a list. `…/customers/{id}/notes` belongs to customer `{id}`.
fn owner_of(catalogue: &Catalogue, op: &Operation) -> Option<Owner> {
    let segments: Vec<&str> = op.path.split('/').collect();
    (1..segments.len()).rev().find_map(|segment| {
        let text = segments[segment];
        if !(text.starts_with('{') && text.ends_with('}')) || text == "{tenant}" {
            return None;
        }
        let list = segments[..segment].join("/");
        let index = catalogue.operation_index("GET", &list)?;
        is_list(&catalogue.operations[index]).then_some(Owner { list: index, segment })
    })
}

fn invented_schema(op: &Operation) -> Value {
    let date = json!({"type": "string", "format": "date-time"});
    let record = json!({"type": "object", "required": ["id"], "properties": {
        "id": {"type": "integer", "format": "int64"}, "createdOn": date, "modifiedOn": date}});
    if is_list(op) {
        json!({"type": "object", "required": ["page", "pageSize", "hasMore", "data"], "properties": {
            "page": {"type": "integer"}, "pageSize": {"type": "integer"}, "hasMore": {"type": "boolean"},
            "totalCount": {"type": "integer", "nullable": true}, "data": {"type": "array", "items": record}}})
    } else if op.is_export() {
        json!({"type": "object", "required": ["hasMore", "continueFrom", "data"], "properties": {
            "hasMore": {"type": "boolean"}, "continueFrom": {"type": "string"},
            "data": {"type": "array", "items": record}}})
    } else {
        record
    }
}
