//! The reporting API: categories, reports with their parameters and fields, and report data as
//! positional rows, generated from the seed. Parameters are validated as the service does.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::util::{format_rfc3339_ms, mix_all, parse_date_ms};

pub struct Param {
    pub name: &'static str,
    pub label: &'static str,
    pub data_type: &'static str,
    pub is_array: bool,
    pub is_required: bool,
    /// The dynamic value set its values come from (`GET dynamic-value-sets/{id}`).
    pub dynamic_set: Option<&'static str>,
}

pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub data_type: &'static str,
}

pub struct Report {
    pub category: &'static str,
    pub id: i64,
    pub name: &'static str,
    pub params: &'static [Param],
    pub fields: &'static [Field],
}

pub const CATEGORIES: &[(&str, &str)] =
    &[("operations", "Operations"), ("accounting", "Accounting"), ("technician", "Technician")];

const FROM: Param =
    Param { name: "From", label: "From", data_type: "Date", is_array: false, is_required: true, dynamic_set: None };
const TO_OPTIONAL: Param =
    Param { name: "To", label: "To", data_type: "Date", is_array: false, is_required: false, dynamic_set: None };
const TO: Param =
    Param { name: "To", label: "To", data_type: "Date", is_array: false, is_required: true, dynamic_set: None };

pub const REPORTS: &[Report] = &[
    Report {
        category: "operations",
        id: 175,
        name: "Jobs by Business Unit",
        params: &[
            FROM,
            TO_OPTIONAL,
            Param {
                name: "BusinessUnitIds",
                label: "Business Units",
                data_type: "Number",
                is_array: true,
                is_required: false,
                dynamic_set: Some("business-units"),
            },
            Param {
                name: "IncludeAdjustmentInvoices",
                label: "Include Adjustment Invoices",
                data_type: "Boolean",
                is_array: false,
                is_required: false,
                dynamic_set: None,
            },
        ],
        fields: &[
            Field { name: "JobId", label: "Job ID", data_type: "Number" },
            Field { name: "JobNumber", label: "Job #", data_type: "String" },
            Field { name: "BusinessUnit", label: "Business Unit", data_type: "String" },
            Field { name: "CompletedOn", label: "Completed", data_type: "Date" },
            Field { name: "Revenue", label: "Revenue", data_type: "Number" },
            Field { name: "Recall", label: "Recall", data_type: "Boolean" },
        ],
    },
    Report {
        category: "operations",
        id: 176,
        name: "Daily Call Volume",
        params: &[FROM, TO_OPTIONAL],
        fields: &[
            Field { name: "Date", label: "Date", data_type: "Date" },
            Field { name: "Calls", label: "Calls", data_type: "Number" },
            Field { name: "Booked", label: "Booked", data_type: "Number" },
        ],
    },
    Report {
        category: "accounting",
        id: 210,
        name: "Invoice Summary",
        params: &[FROM, TO],
        fields: &[
            Field { name: "InvoiceNumber", label: "Invoice #", data_type: "String" },
            Field { name: "InvoiceDate", label: "Invoice Date", data_type: "Date" },
            Field { name: "Total", label: "Total", data_type: "Number" },
            Field { name: "Balance", label: "Balance", data_type: "Number" },
        ],
    },
    Report {
        category: "technician",
        id: 301,
        name: "Technician Performance",
        params: &[FROM, TO],
        fields: &[
            Field { name: "Technician", label: "Technician", data_type: "String" },
            Field { name: "CompletedJobs", label: "Completed Jobs", data_type: "Number" },
            Field { name: "Revenue", label: "Revenue", data_type: "Number" },
        ],
    },
];

pub fn find(category: &str, id: i64) -> Option<&'static Report> {
    REPORTS.iter().find(|r| r.category.eq_ignore_ascii_case(category) && r.id == id)
}

pub fn category_exists(category: &str) -> bool {
    CATEGORIES.iter().any(|(id, _)| id.eq_ignore_ascii_case(category))
}

pub fn metadata(report: &Report) -> Value {
    json!({
        "id": report.id,
        "name": report.name,
        "modifiedOn": "2026-01-15T08:30:00.000Z",
        "parameters": report.params.iter().map(|p| json!({
            "name": p.name, "label": p.label, "dataType": p.data_type,
            "isArray": p.is_array, "isRequired": p.is_required,
            "acceptValues": p.dynamic_set.map(|id| json!({"dynamicSetId": id, "fields": dynamic_set_fields(), "values": null})),
        })).collect::<Vec<_>>(),
        "fields": report.fields.iter().map(|f| json!({"name": f.name, "label": f.label, "dataType": f.data_type})).collect::<Vec<_>>(),
    })
}

/// The rows (`[value, name]`) of a dynamic value set, if the sandbox has it.
pub fn dynamic_set(id: &str) -> Option<Vec<Value>> {
    match id {
        "business-units" => Some(
            [(1, "Plumbing"), (2, "HVAC"), (3, "Electrical"), (4, "Drains & Sewer"), (5, "Water Heaters")]
                .iter()
                .map(|(id, name)| json!([id, name]))
                .collect(),
        ),
        _ => None,
    }
}

/// The fields of a dynamic value set's rows.
pub fn dynamic_set_fields() -> Value {
    json!([{"name": "Value", "label": "Value"}, {"name": "Name", "label": "Name"}])
}

/// Checks the `parameters` of a data request against the report; field errors keyed by name.
pub fn validate_parameters(report: &Report, body: &Value) -> Result<(), BTreeMap<String, Vec<String>>> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let given = match body.get("parameters") {
        Some(Value::Array(items)) => items.as_slice(),
        _ => {
            errors.entry("parameters".into()).or_default().push("The parameters field is required.".into());
            return Err(errors);
        }
    };
    let mut seen = Vec::new();
    for item in given {
        let Some(name) = item.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) else {
            errors.entry("parameters".into()).or_default().push("Each parameter needs a non-empty name.".into());
            continue;
        };
        let Some(param) = report.params.iter().find(|p| p.name.eq_ignore_ascii_case(name)) else {
            errors.entry(name.into()).or_default().push(format!("The report has no parameter '{name}'."));
            continue;
        };
        seen.push(param.name);
        let value = item.get("value").unwrap_or(&Value::Null);
        if value.is_null() {
            if param.is_required {
                errors
                    .entry(param.name.into())
                    .or_default()
                    .push(format!("The parameter '{}' is required.", param.name));
            }
            continue;
        }
        let values: Vec<&Value> = match (param.is_array, value) {
            (true, Value::Array(vs)) => vs.iter().collect(),
            (true, v) => vec![v],
            (false, Value::Array(_)) => {
                errors
                    .entry(param.name.into())
                    .or_default()
                    .push(format!("The parameter '{}' takes one value, not a list.", param.name));
                continue;
            }
            (false, v) => vec![v],
        };
        for v in values {
            if !value_fits(param.data_type, v) {
                errors.entry(param.name.into()).or_default().push(format!(
                    "The value '{}' is not a valid {}.",
                    display(v),
                    param.data_type
                ));
            }
        }
    }
    for p in report.params.iter().filter(|p| p.is_required && !seen.contains(&p.name)) {
        errors.entry(p.name.into()).or_default().push(format!("The parameter '{}' is required.", p.name));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn value_fits(data_type: &str, v: &Value) -> bool {
    match data_type {
        "Date" => v.as_str().is_some_and(|s| parse_date_ms(s).is_some()),
        "Number" => v.is_number() || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok()),
        "Boolean" => {
            v.is_boolean()
                || v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false"))
        }
        _ => v.is_string() || v.is_number() || v.is_boolean(),
    }
}

/// Row `index` (from 0) of a report's data: one value per field, in field order.
pub fn row(report: &Report, seed: u64, index: u64) -> Value {
    let h = mix_all(&[seed, report.id as u64, index]);
    let day_ms = crate::data::EPOCH_MS + (index as i64) * 86_400_000 / 8;
    Value::Array(
        report
            .fields
            .iter()
            .enumerate()
            .map(|(n, f)| {
                let hf = mix_all(&[h, n as u64]);
                match (f.data_type, f.name) {
                    ("Number", "JobId") => json!(300_000_001 + index as i64),
                    ("Number", "Revenue" | "Total" | "Balance") => json!((hf % 1_000_000) as f64 / 100.0),
                    ("Number", _) => json!(hf % 200),
                    ("Date", _) => json!(format_rfc3339_ms(day_ms)),
                    ("Boolean", _) => json!(hf.is_multiple_of(7)),
                    (_, "JobNumber") => json!(format!("{}", 10_000 + index)),
                    (_, "InvoiceNumber") => json!(format!("INV-{}", 50_000 + index)),
                    (_, "BusinessUnit") => json!(["Plumbing", "HVAC", "Electrical"][(hf % 3) as usize]),
                    (_, "Technician") => json!(format!("Technician {}", 1 + hf % 40)),
                    _ => json!(format!("{}-{index}", f.name)),
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_unknown_and_mistyped_parameters_are_named() {
        let report = find("operations", 175).unwrap();
        let errors = validate_parameters(
            report,
            &json!({"parameters": [{"name": "Nope", "value": 1}, {"name": "To", "value": "soon"}]}),
        )
        .unwrap_err();
        assert!(errors.contains_key("From"), "{errors:?}");
        assert!(errors.contains_key("Nope"), "{errors:?}");
        assert!(errors.contains_key("To"), "{errors:?}");
        assert!(validate_parameters(report, &json!({"parameters": [{"name": "from", "value": "2026-01-01"}, {"name": "BusinessUnitIds", "value": [1, "2"]}]})).is_ok());
        assert!(validate_parameters(report, &json!({})).unwrap_err().contains_key("parameters"));
    }

    #[test]
    fn rows_have_one_value_per_field_and_are_deterministic() {
        let report = find("accounting", 210).unwrap();
        assert_eq!(row(report, 1, 5), row(report, 1, 5));
        assert_ne!(row(report, 1, 5), row(report, 2, 5));
        assert_eq!(row(report, 1, 5).as_array().unwrap().len(), report.fields.len());
    }
}
