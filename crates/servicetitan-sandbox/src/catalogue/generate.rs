//! Generation: varied, deterministic instances of a schema, for the sandbox's answers.
//!
//! A schema is compiled once into a [`Shape`] (references resolved, bounds and formats read,
//! properties chosen), and a shape renders an instance from a 64-bit seed without looking at
//! the schema again. Every value below an object key or an array slot is derived from the seed
//! and that key or slot, so two shapes of the same record (a list's item and the get-by-id
//! answer) render the same values for the same fields from the same seed.
//!
//! Richness is bounded so that a page of thousands of records stays small: optional
//! properties are filled only near the top of a record, arrays hold items only there, and
//! recursive or composed (`allOf`, ambiguous `oneOf`) parts fall back to the minimal
//! [`example`](Catalogue::example).

use serde_json::{Map, Value};

use super::validation::bounds;
use super::{Catalogue, MAX_EXAMPLE_DEPTH};
use crate::util::{format_rfc3339_ms, mix};

/// Objects at this nesting level or shallower carry their optional properties too.
const RICH_LEVELS: usize = 2;
/// Arrays at this nesting level or shallower hold up to `RICH_ITEMS` items (at least
/// `minItems` everywhere).
const ARRAY_LEVELS: usize = 1;
const RICH_ITEMS: usize = 2;
/// One nullable value in this many renders as null, so that clients meet nulls where the
/// specs allow them.
const NULL_ONE_IN: u64 = 16;
/// Generated date-times fall in the two years from 2024-01-01T00:00:00Z.
const DATES_FROM_MS: i64 = 1_704_067_200_000;
const DATES_SPAN_SECS: u64 = 2 * 365 * 86_400;

const FIRST: &[&str] =
    &["Ava", "Ben", "Carla", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jamal", "Kira", "Luis"];
const LAST: &[&str] =
    &["Anders", "Brooks", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Khan", "Lopez"];
const WORDS: &[&str] =
    &["Maple", "Cedar", "Harbor", "Summit", "Copper", "Willow", "Granite", "Meadow", "Aspen", "Beacon"];
const STREETS: &[&str] = &["Oak St", "Maple Ave", "Cedar Ln", "Pine Rd", "Elm Dr", "Birch Way"];
const CITIES: &[(&str, &str, &str)] =
    &[("Austin", "TX", "787"), ("Denver", "CO", "802"), ("Phoenix", "AZ", "850"), ("Atlanta", "GA", "303")];

/// A compiled schema: renders valid, varied instances cheaply. See the module documentation.
#[derive(Debug, Clone)]
pub struct Shape(Node);

/// What a top-level property of an object shape holds, so that a caller can set it (an id,
/// a modification date) without breaking the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Integer,
    /// A string with `format: guid` or `uuid`.
    Guid,
    DateTime,
    String,
    Boolean,
    Other,
}

#[derive(Debug, Clone)]
enum Node {
    /// A value computed once (minimal examples of the parts generation does not vary).
    Fixed(Value),
    Bool,
    Int {
        low: i64,
        high: i64,
    },
    Num {
        low: f64,
        high: f64,
    },
    Text {
        kind: Text,
        min: usize,
        max: Option<usize>,
    },
    Enum(Vec<Value>),
    Nullable(Box<Node>),
    Array {
        item: Box<Node>,
        min: usize,
        max: usize,
    },
    Object {
        fields: Vec<Field>,
        entry: Option<Box<Node>>,
    },
    AnyOf(Vec<Node>),
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    salt: u64,
    node: Node,
}

#[derive(Debug, Clone, Copy)]
enum Text {
    DateTime,
    Date,
    Guid,
    Duration,
    Email,
    Phone,
    Url,
    PersonName,
    FirstName,
    LastName,
    Street,
    City,
    State,
    Zip,
    Country,
    Sentence,
    Code,
    Word,
}

impl Catalogue {
    /// Compiles `schema` into a [`Shape`]; keep it and render as many instances as needed.
    pub fn shape(&self, schema: &Value) -> Shape {
        let mut compiler = Compiler { catalogue: self, expanding: Vec::new() };
        Shape(compiler.compile(schema, "", 0, 0))
    }
}

impl Shape {
    /// The instance for `seed`: the same seed always gives the same value.
    pub fn render(&self, seed: u64) -> Value {
        self.0.render(seed, seed)
    }

    /// What the top-level property `name` holds, if this is an object shape that has it.
    pub fn field(&self, name: &str) -> Option<FieldKind> {
        let Node::Object { fields, .. } = self.0.unwrapped() else {
            return None;
        };
        let node = fields.iter().find(|f| f.name == name)?.node.unwrapped();
        Some(match node {
            Node::Int { .. } => FieldKind::Integer,
            Node::Bool => FieldKind::Boolean,
            Node::Text { kind: Text::Guid, .. } => FieldKind::Guid,
            Node::Text { kind: Text::DateTime, .. } => FieldKind::DateTime,
            Node::Text { max: None, min: 0, .. } => FieldKind::String,
            _ => FieldKind::Other,
        })
    }

    /// Whether the top-level property `name` exists and may be null.
    pub fn nullable(&self, name: &str) -> bool {
        match self.0.unwrapped() {
            Node::Object { fields, .. } => {
                fields.iter().any(|f| f.name == name && matches!(f.node, Node::Nullable(_) | Node::Fixed(Value::Null)))
            }
            _ => false,
        }
    }

    /// Whether the shape is a JSON array (a bare list of records).
    pub fn is_array(&self) -> bool {
        matches!(self.0.unwrapped(), Node::Array { .. })
    }

    /// The shape of the array items or of the top-level property `name`, whichever applies.
    pub fn part(&self, name: &str) -> Option<Shape> {
        match self.0.unwrapped() {
            Node::Array { item, .. } if name.is_empty() => Some(Shape((**item).clone())),
            Node::Object { fields, .. } => fields.iter().find(|f| f.name == name).map(|f| Shape(f.node.clone())),
            _ => None,
        }
    }
}

impl Node {
    fn unwrapped(&self) -> &Node {
        match self {
            Node::Nullable(inner) => inner.unwrapped(),
            other => other,
        }
    }

    /// `h` is this value's hash, `group` the enclosing object's: names, e-mail addresses and
    /// the parts of an address take the group's, so that they belong together.
    fn render(&self, h: u64, group: u64) -> Value {
        match self {
            Node::Fixed(value) => value.clone(),
            Node::Bool => Value::Bool(h & 1 == 1),
            Node::Int { low, high } => {
                let span = (*high as i128 - *low as i128 + 1) as u128;
                Value::from((*low as i128 + (h as u128 % span) as i128) as i64)
            }
            Node::Num { low, high } => {
                let cents = ((high - low) * 100.0).floor().max(0.0) as u64;
                let n = low + (h % (cents + 1)) as f64 / 100.0;
                // Rounding may step past a bound by an ulp; the bound itself is valid.
                let n = (n * 100.0).round() / 100.0;
                let n = n.clamp(*low, *high);
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Value::from(n as i64)
                } else {
                    Value::from(n)
                }
            }
            Node::Text { kind, min, max } => Value::String(fit(text(*kind, h, group), *min, *max)),
            Node::Enum(values) => values[(h % values.len() as u64) as usize].clone(),
            Node::Nullable(inner) => {
                if mix(h ^ 0x6E75_6C6C).is_multiple_of(NULL_ONE_IN) {
                    Value::Null
                } else {
                    inner.render(h, group)
                }
            }
            Node::Array { item, min, max } => {
                let n = min + (mix(h) % (max - min + 1) as u64) as usize;
                (0..n)
                    .map(|i| {
                        let h = mix(h ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                        item.render(h, h)
                    })
                    .collect()
            }
            Node::Object { fields, entry } => {
                let mut out = Map::new();
                for field in fields {
                    out.insert(field.name.clone(), field.node.render(mix(h ^ field.salt), h));
                }
                if let Some(entry) = entry {
                    out.insert(format!("{}{}", pick(WORDS, h).to_lowercase(), h % 10), entry.render(mix(h ^ 0xE27), h));
                }
                Value::Object(out)
            }
            Node::AnyOf(alternatives) => alternatives[(h % alternatives.len() as u64) as usize].render(mix(h), group),
        }
    }
}

struct Compiler<'a> {
    catalogue: &'a Catalogue,
    /// References being expanded on the current path: meeting one again means recursion.
    expanding: Vec<&'a str>,
}

impl<'a> Compiler<'a> {
    /// `name` is the property the schema describes (for realistic strings and numbers),
    /// `level` the object/array nesting, `hops` the reference and wrapper depth.
    fn compile(&mut self, schema: &'a Value, name: &str, level: usize, hops: usize) -> Node {
        let Value::Object(map) = schema else {
            return Node::Fixed(Value::Null);
        };
        if hops > MAX_EXAMPLE_DEPTH {
            return Node::Fixed(self.catalogue.example(schema));
        }
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            let Some(target) = self.catalogue.schemas.get(reference) else {
                return Node::Fixed(Value::Null);
            };
            if self.expanding.contains(&reference) {
                // Recursive: the minimal example ends the recursion (null where allowed).
                return Node::Fixed(self.catalogue.example(schema));
            }
            self.expanding.push(reference);
            let node = self.compile(target, name, level, hops + 1);
            self.expanding.pop();
            return node;
        }
        let node = self.compile_plain(schema, map, name, level, hops);
        if map.get("nullable") == Some(&Value::Bool(true)) && !matches!(node, Node::Fixed(_)) {
            Node::Nullable(Box::new(node))
        } else {
            node
        }
    }

    fn compile_plain(
        &mut self,
        schema: &'a Value,
        map: &'a Map<String, Value>,
        name: &str,
        level: usize,
        hops: usize,
    ) -> Node {
        if let Some(Value::Array(values)) = map.get("enum") {
            return if values.is_empty() {
                Node::Fixed(self.catalogue.example(schema))
            } else {
                Node::Enum(values.clone())
            };
        }
        if map.contains_key("allOf") {
            return Node::Fixed(self.catalogue.example(schema));
        }
        for keyword in ["oneOf", "anyOf"] {
            if let Some(Value::Array(alternatives)) = map.get(keyword) {
                return match alternatives.as_slice() {
                    [only] => self.compile(only, name, level, hops + 1),
                    // Any alternative satisfies anyOf; oneOf needs exactly one, which the
                    // minimal example already works out.
                    many if keyword == "anyOf" => {
                        Node::AnyOf(many.iter().map(|a| self.compile(a, name, level, hops + 1)).collect())
                    }
                    _ => Node::Fixed(self.catalogue.example(schema)),
                };
            }
        }
        let kind = map.get("type").and_then(Value::as_str).unwrap_or_else(|| {
            if map.contains_key("properties") {
                "object"
            } else if map.contains_key("items") {
                "array"
            } else {
                "none"
            }
        });
        let format = map.get("format").and_then(Value::as_str).unwrap_or("");
        match kind {
            "object" => self.object(map, level, hops),
            "array" => {
                let min = map.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
                let most = map.get("maxItems").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
                let max = if level <= ARRAY_LEVELS { min.max(RICH_ITEMS) } else { min }.min(most).max(min);
                let item =
                    map.get("items").map_or(Node::Fixed(Value::Null), |s| self.compile(s, name, level + 1, hops));
                Node::Array { item: Box::new(item), min, max }
            }
            "string" => {
                let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
                let max = map.get("maxLength").and_then(Value::as_u64).map(|m| m as usize);
                Node::Text { kind: text_kind(format, name), min, max }
            }
            "integer" => {
                let (low, high) = int_range(map, format, name);
                Node::Int { low, high }
            }
            "number" => {
                let (low, high) = number_range(map, name);
                Node::Num { low, high }
            }
            "boolean" => Node::Bool,
            // No type and nothing to go on: anything is valid, null included.
            _ => Node::Fixed(Value::Null),
        }
    }

    fn object(&mut self, map: &'a Map<String, Value>, level: usize, hops: usize) -> Node {
        let properties = map.get("properties").and_then(Value::as_object);
        let required: Vec<&str> = map
            .get("required")
            .and_then(Value::as_array)
            .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
        let extra = map.get("additionalProperties").filter(|a| a.is_object());
        let rich = level <= RICH_LEVELS;
        let mut fields = Vec::new();
        if let Some(properties) = properties {
            for (key, schema) in properties {
                if rich || required.contains(&key.as_str()) {
                    fields.push(Field {
                        name: key.clone(),
                        salt: salt(key),
                        node: self.compile(schema, key, level + 1, hops),
                    });
                }
            }
        }
        for key in required {
            if properties.is_some_and(|p| p.contains_key(key)) {
                continue;
            }
            // Required but undeclared: the additional-properties schema governs it.
            let node = extra.map_or(Node::Fixed(Value::Null), |s| self.compile(s, key, level + 1, hops));
            fields.push(Field { name: key.to_owned(), salt: salt(key), node });
        }
        // A dictionary (no declared properties): show one entry near the top of a record.
        let entry = match (properties, extra) {
            (None, Some(schema)) if rich => Some(Box::new(self.compile(schema, "", level + 1, hops))),
            _ => None,
        };
        Node::Object { fields, entry }
    }
}

/// FNV-1a: a stable salt per property name.
fn salt(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn pick<T: Copy>(list: &[T], h: u64) -> T {
    list[(h % list.len() as u64) as usize]
}

fn text_kind(format: &str, name: &str) -> Text {
    match format {
        "date-time" => return Text::DateTime,
        "date" => return Text::Date,
        "uuid" | "guid" => return Text::Guid,
        "duration" => return Text::Duration,
        "email" => return Text::Email,
        "phone" => return Text::Phone,
        "uri" | "url" => return Text::Url,
        _ => {}
    }
    let lower = name.to_ascii_lowercase();
    let has = |part: &str| lower.contains(part);
    if has("email") {
        Text::Email
    } else if has("phone") || lower == "fax" || lower == "mobile" {
        Text::Phone
    } else if has("url") || has("uri") || has("link") {
        Text::Url
    } else if lower == "firstname" {
        Text::FirstName
    } else if lower == "lastname" {
        Text::LastName
    } else if has("name") {
        Text::PersonName
    } else if lower == "street" || has("address") {
        Text::Street
    } else if lower == "city" {
        Text::City
    } else if lower == "state" {
        Text::State
    } else if lower == "zip" || has("postal") {
        Text::Zip
    } else if lower == "country" {
        Text::Country
    } else if has("description") || has("summary") || has("note") || has("memo") || has("comment") || has("text") {
        Text::Sentence
    } else if has("code") || has("number") {
        Text::Code
    } else {
        Text::Word
    }
}

fn text(kind: Text, h: u64, group: u64) -> String {
    let first = pick(FIRST, group >> 3);
    let last = pick(LAST, group >> 11);
    let (city, state, zip) = pick(CITIES, group >> 17);
    match kind {
        Text::DateTime => format_rfc3339_ms(DATES_FROM_MS + ((h % DATES_SPAN_SECS) * 1000) as i64),
        Text::Date => format_rfc3339_ms(DATES_FROM_MS + ((h % DATES_SPAN_SECS) * 1000) as i64)[..10].to_owned(),
        Text::Guid => {
            let g = mix(h);
            format!(
                "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
                h >> 32,
                (h >> 16) & 0xFFFF,
                h & 0xFFF,
                8 + (g >> 62),
                (g >> 48) & 0xFFF,
                g & 0xFFFF_FFFF_FFFF
            )
        }
        Text::Duration => format!("{:02}:{:02}:00", h % 9, (h >> 8) % 4 * 15),
        Text::Email => format!("{}.{}{}@example.com", first.to_lowercase(), last.to_lowercase(), group % 100),
        Text::Phone => format!("555-01{:02}-{:04}", h % 100, (h >> 7) % 10_000),
        Text::Url => format!("https://example.com/{}/{}", pick(WORDS, h).to_lowercase(), h % 10_000),
        Text::PersonName => format!("{first} {last}"),
        Text::FirstName => first.to_owned(),
        Text::LastName => last.to_owned(),
        Text::Street => format!("{} {}", 100 + h % 9900, pick(STREETS, h >> 21)),
        Text::City => city.to_owned(),
        Text::State => state.to_owned(),
        Text::Zip => format!("{zip}{:02}", group % 100),
        Text::Country => "USA".to_owned(),
        Text::Sentence => format!("{} visit for {} {}", pick(WORDS, h >> 5), pick(FIRST, h >> 3), pick(LAST, h >> 11)),
        Text::Code => format!("{}-{}", &pick(WORDS, h >> 5)[..3].to_uppercase(), 1000 + h % 9000),
        Text::Word => format!("{} {}", pick(WORDS, h >> 5), 1 + h % 999),
    }
}

/// Cuts or pads `text` to the schema's length bounds (counted in characters).
fn fit(mut text: String, min: usize, max: Option<usize>) -> String {
    if let Some(max) = max {
        if let Some((cut, _)) = text.char_indices().nth(max) {
            text.truncate(cut);
        }
    }
    while text.chars().count() < min {
        text.push('x');
    }
    text
}

/// Integers stay within 2^53, so that JavaScript clients read them exactly.
const SAFE: f64 = 9_007_199_254_740_991.0;

fn int_range(map: &Map<String, Value>, format: &str, name: &str) -> (i64, i64) {
    let lower = name.to_ascii_lowercase();
    let (low, high) = if lower.ends_with("id") || lower.ends_with("ids") {
        (1.0, 1000.0)
    } else if lower.contains("count") || lower.contains("quantity") {
        (0.0, 20.0)
    } else if format == "int32" {
        (1.0, 10_000.0)
    } else {
        (1.0, 100_000.0)
    };
    let (low, high) = within(bounds(map), low, high);
    (low.ceil().clamp(-SAFE, SAFE) as i64, high.floor().clamp(-SAFE, SAFE) as i64)
}

fn number_range(map: &Map<String, Value>, name: &str) -> (f64, f64) {
    let lower = name.to_ascii_lowercase();
    let (low, high) = if lower.contains("latitude") {
        (25.0, 48.0)
    } else if lower.contains("longitude") {
        (-124.0, -70.0)
    } else if lower.contains("percent") || lower.contains("rate") {
        (0.0, 100.0)
    } else {
        (0.0, 5000.0)
    };
    within(bounds(map), low, high)
}

/// The preferred range `[low, high]` moved inside the schema's bounds.
fn within((min, max): (Option<f64>, Option<f64>), low: f64, high: f64) -> (f64, f64) {
    let span = high - low;
    let (mut low, mut high) = (min.map_or(low, |m| low.max(m)), max.map_or(high, |m| high.min(m)));
    if low > high {
        // The preferred range lies outside the bounds: start at the bound that excluded it.
        (low, high) = match (min, max) {
            (Some(min), Some(max)) => (min, max),
            (Some(min), None) => (min, min + span),
            (None, Some(max)) => (max - span, max),
            (None, None) => (low, low),
        };
    }
    (low, high)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::tests::cat;
    use serde_json::json;

    /// The guarantee the sandbox's answers rest on: every rendering of every schema the specs
    /// document validates against that schema.
    #[test]
    fn renderings_of_every_documented_schema_validate() {
        let c = cat();
        let mut failures = Vec::new();
        let mut rendered = 0;
        let schemas = c
            .operations
            .iter()
            .flat_map(|op| op.responses.values().chain(op.body.iter()))
            .chain(c.operations.iter().flat_map(|op| op.params.iter().filter_map(|p| p.schema.as_ref())))
            .chain(c.schemas.values())
            .filter(|s| !s.is_null());
        for schema in schemas {
            let shape = c.shape(schema);
            for seed in 0..12u64 {
                let value = shape.render(mix(seed));
                rendered += 1;
                if let Err(errors) = c.validate(schema, &value) {
                    failures.push(format!("{schema}: {errors:?}"));
                    break;
                }
            }
        }
        assert!(failures.is_empty(), "{} failures, e.g. {:#?}", failures.len(), &failures[..failures.len().min(3)]);
        assert!(rendered > 20_000, "{rendered}");
    }

    #[test]
    fn renderings_vary_and_repeat() {
        let c = cat();
        let schema = c.schema("crm:Crm.V2.Customers.CustomerResponse").unwrap();
        let shape = c.shape(schema);
        assert_eq!(shape.render(7), shape.render(7));
        assert_ne!(shape.render(7), shape.render(8));
        let one = shape.render(7);
        // Optional properties are filled near the top, and strings look like data.
        assert!(one["address"]["city"].as_str().is_some_and(|s| !s.is_empty()), "{one}");
        // The parts of one address belong together.
        let city = CITIES.iter().find(|c| c.0 == one["address"]["city"]).unwrap();
        assert_eq!(one["address"]["state"], city.1, "{one}");
        assert_eq!(shape.field("id"), Some(FieldKind::Integer));
        assert_eq!(shape.field("createdOn"), Some(FieldKind::DateTime));
        assert_eq!(shape.field("nope"), None);
    }

    #[test]
    fn the_same_field_renders_the_same_under_two_shapes() {
        let c = cat();
        let wide = json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "name": {"type": "string"}, "extra": {"type": "boolean"}}});
        let narrow = json!({"type": "object", "properties": {"name": {"type": "string"}, "id": {"type": "integer"}}});
        let (a, b) = (c.shape(&wide).render(99), c.shape(&narrow).render(99));
        assert_eq!((&a["id"], &a["name"]), (&b["id"], &b["name"]));
    }

    #[test]
    fn bounds_and_lengths_hold() {
        let c = cat();
        for schema in [
            json!({"type": "integer", "minimum": 5_000_000}),
            json!({"type": "integer", "maximum": -3}),
            json!({"type": "integer", "minimum": 2, "maximum": 2}),
            json!({"type": "number", "minimum": 0.5, "maximum": 0.75}),
            json!({"type": "string", "minLength": 40}),
            json!({"type": "string", "maxLength": 2, "format": "email"}),
            json!({"type": "array", "items": {"type": "boolean"}, "minItems": 3, "maxItems": 3}),
        ] {
            let shape = c.shape(&schema);
            for seed in 0..50 {
                let value = shape.render(mix(seed));
                assert!(c.validate(&schema, &value).is_ok(), "{schema}: {value}");
            }
        }
    }

    #[test]
    fn recursive_schemas_end() {
        let text = json!({"source": {"repository": "r", "commit": "c"}, "modules": {}, "operations": [],
            "schemas": {"m:Node": {"type": "object", "required": ["label"],
                                   "properties": {"child": {"$ref": "m:Node"}, "label": {"type": "string"}}}}})
        .to_string();
        let c = Catalogue::from_json(&text).unwrap();
        let schema = json!({"$ref": "m:Node"});
        let value = c.shape(&schema).render(1);
        // The first level recurses in full, the repeated reference renders minimally.
        assert!(value["child"]["label"].is_string(), "{value}");
        assert!(value["child"]["child"].get("child").is_none(), "{value}");
        c.validate(&schema, &value).unwrap();
    }
}
