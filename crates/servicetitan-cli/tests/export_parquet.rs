//! `--format parquet`: the file read back with the parquet crate's reader holds the same
//! records as the JSONL export, typed from the official schema.
#![cfg(feature = "parquet")]

mod common;

use common::{jsonl, run, stderr, stdout, Harness};
use parquet::basic::{LogicalType, Type as Physical};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use servicetitan_sandbox::SandboxConfig;

/// The value at a dotted path of a record (`address.street`), `Null` if absent.
fn at_path<'a>(record: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    let mut value = record;
    for part in path.split('.') {
        value = value.get(part).unwrap_or(&serde_json::Value::Null);
    }
    value
}

/// `2024-01-01T00:01:00.000Z` (the sandbox's form) to milliseconds since 1970, UTC.
fn millis_of(text: &str) -> Option<i64> {
    let day = |y: i64, m: i64, d: i64| {
        // Days since 1970-01-01, counted plainly.
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let mut days = (1970..y).map(|y| if leap(y) { 366 } else { 365 }).sum::<i64>();
        let months = [31, if leap(y) { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        days += months[..(m - 1) as usize].iter().sum::<i64>();
        days + d - 1
    };
    let n = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let fraction = text.get(20..23).and_then(|f| f.parse::<i64>().ok()).unwrap_or(0);
    let seconds = day(n(0..4)?, n(5..7)?, n(8..10)?) * 86_400 + n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?;
    Some(seconds * 1000 + fraction)
}

fn same(field: &Field, json: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (field, json) {
        (Field::Null, Value::Null) => true,
        // date-time columns: milliseconds since 1970, UTC.
        (Field::TimestampMillis(ms), Value::String(text)) => millis_of(text) == Some(*ms),
        (Field::Long(n), Value::Number(m)) => m.as_i64() == Some(*n),
        (Field::Double(x), Value::Number(m)) => m.as_f64() == Some(*x),
        (Field::Bool(b), Value::Bool(c)) => b == c,
        (Field::Str(s), Value::String(t)) => s == t,
        // Arrays (and objects the schema leaves open) are JSON text.
        (Field::Str(s), other @ (Value::Array(_) | Value::Object(_))) => {
            serde_json::from_str::<Value>(s).ok().as_ref() == Some(other)
        }
        _ => false,
    }
}

#[test]
fn parquet_holds_the_jsonl_records_with_schema_types() {
    let h = Harness::with_config(SandboxConfig { records: 700, export_page_size: 100, ..SandboxConfig::default() });
    for stream in ["crm_customers", "jpm_jobs"] {
        let json_out = run(h.cli().args(["export", stream]));
        assert!(json_out.status.success(), "{}", stderr(&json_out));
        let records = jsonl(&stdout(&json_out));

        let out = h.dir.join("out");
        let output = run(h.cli().args(["export", stream, "--format", "parquet", "--out"]).arg(&out));
        assert!(output.status.success(), "{}", stderr(&output));
        let path = out.join(format!("{stream}.1001.parquet"));
        let reader = SerializedFileReader::try_from(path.as_path()).expect("a Parquet file");
        let metadata = reader.metadata().clone();
        assert_eq!(metadata.file_metadata().num_rows(), 700);
        let schema = metadata.file_metadata().schema_descr_ptr();
        let physical =
            |name: &str| schema.columns().iter().find(|c| c.path().string() == name).map(|c| c.physical_type());
        assert_eq!(physical("id"), Some(Physical::INT64), "{stream}");
        assert_eq!(physical("active"), Some(Physical::BOOLEAN), "{stream}");
        assert_eq!(physical("modifiedOn"), Some(Physical::INT64), "{stream}: a TIMESTAMP(MILLIS) column");
        let logical =
            schema.columns().iter().find(|c| c.path().string() == "modifiedOn").unwrap().logical_type_ref().cloned();
        assert!(matches!(logical, Some(LogicalType::Timestamp { is_adjusted_to_u_t_c: true, .. })), "{logical:?}");
        if stream == "crm_customers" {
            assert_eq!(physical("balance"), Some(Physical::DOUBLE));
            assert_eq!(physical("address.street"), Some(Physical::BYTE_ARRAY));
        }

        let mut rows = 0;
        for (row, record) in reader.into_iter().zip(&records) {
            let row = row.expect("a row");
            for (name, field) in row.get_column_iter() {
                let json = at_path(record, name);
                assert!(same(field, json), "{stream} record {}: column {name}: {field:?} vs {json}", record["id"]);
            }
            rows += 1;
        }
        assert_eq!(rows, records.len());
        // Every field of the JSONL records has its column.
        let names: Vec<String> = schema.columns().iter().map(|c| c.path().string()).collect();
        assert!(names.iter().any(|n| n == "tagTypeIds"), "{names:?}");
    }
}
