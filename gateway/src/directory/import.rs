//! `entra-gateway directory import FILE`: CSV or JSON into the builtin
//! directory.
//!
//! The whole file is validated first and every problem is reported at once
//! (so an operator fixes a spreadsheet in one pass); nothing is written
//! unless the whole file is valid. Importing is idempotent: the same file
//! twice changes nothing the second time.
//!
//! Row numbers: in a CSV the file's line (the header is row 1, so the first
//! record is row 2, as a spreadsheet shows it); in JSON the position in the
//! array, from 1.
//!
//! An empty `tid`/`oid` keeps the binding a record already has (the gateway
//! binds records at their first sign-in, and re-importing the original
//! spreadsheet must not unbind everybody; with `match_by: unique_id` that
//! would lock them all out). To move a record to another identity, give the
//! new `tid` and `oid`.

use super::builtin::{BuiltinDirectory, Change};
use super::{DirectoryError, UserRecord, email_key};
use policy::{PortalKind, TenantId};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

/// Columns of the CSV header and fields of a JSON record, in output order.
pub const COLUMNS: [&str; 9] = [
    "key",
    "kind",
    "email",
    "tid",
    "oid",
    "name",
    "client",
    "disabled",
    "two_factor",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    /// By file extension (`.csv`, `.json`, any case).
    pub fn from_path(path: &Path) -> Result<Format, ImportError> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Ok(Format::Csv),
            Some("json") => Ok(Format::Json),
            _ => Err(ImportError::Unreadable(format!(
                "{}: unknown file type (expected a .csv or .json file)",
                path.display()
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file cannot be read or is of an unknown type (bad argument).
    #[error("{0}")]
    Unreadable(String),
    /// The file's content is invalid: every problem, one line each.
    #[error("{} problem(s) in the import:\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
    /// The store could not be read or written (runtime failure).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} unchanged",
            self.added, self.updated, self.unchanged
        )
    }
}

/// Reads and validates a file; the format comes from its extension.
pub fn read_file(path: &Path) -> Result<Vec<UserRecord>, ImportError> {
    let format = Format::from_path(path)?;
    let text =
        std::fs::read_to_string(path).map_err(|e| ImportError::Unreadable(format!("{}: {e}", path.display())))?;
    parse(&text, format)
}

/// Parses and validates the text of an import file.
pub fn parse(text: &str, format: Format) -> Result<Vec<UserRecord>, ImportError> {
    // Spreadsheets save UTF-8 with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = Vec::new();
    let rows = match format {
        Format::Csv => csv_rows(text, &mut errors),
        Format::Json => json_rows(text, &mut errors),
    };
    let mut records = Vec::new();
    for (row, fields) in rows {
        match build(fields) {
            Ok(rec) => records.push((row, rec)),
            Err(problems) => errors.extend(problems.into_iter().map(|p| format!("row {row}: {p}"))),
        }
    }
    errors.extend(duplicates(&records));
    if errors.is_empty() {
        Ok(records.into_iter().map(|(_, r)| r).collect())
    } else {
        Err(ImportError::Invalid(errors))
    }
}

/// One row's cells by column; `None` = empty or absent.
type Fields = HashMap<&'static str, Option<String>>;

fn column(name: &str) -> Option<&'static str> {
    COLUMNS.into_iter().find(|c| *c == name)
}

fn csv_rows(text: &str, errors: &mut Vec<String>) -> Vec<(u64, Fields)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<Option<&'static str>> = match reader.headers() {
        Ok(h) => h
            .iter()
            .map(|name| {
                let c = column(&name.to_ascii_lowercase());
                if c.is_none() {
                    errors.push(format!(
                        "row 1: unknown column {name:?} (expected {})",
                        COLUMNS.join(",")
                    ));
                }
                c
            })
            .collect(),
        Err(e) => {
            errors.push(format!("row 1: {e}"));
            return Vec::new();
        }
    };
    for required in ["key", "kind"] {
        if !header.contains(&Some(required)) {
            errors.push(format!("row 1: the header has no {required:?} column"));
        }
    }
    let mut seen = HashSet::new();
    for c in header.iter().flatten() {
        if !seen.insert(*c) {
            errors.push(format!("row 1: column {c:?} appears twice"));
        }
    }
    if !errors.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    for result in reader.records() {
        match result {
            Ok(record) => {
                let row = record.position().map_or(0, |p| p.line());
                let fields = header
                    .iter()
                    .zip(record.iter())
                    .filter_map(|(c, cell)| c.map(|c| (c, (!cell.is_empty()).then(|| cell.to_string()))))
                    .collect();
                rows.push((row, fields));
            }
            Err(e) => {
                let row = e.position().map_or(0, |p| p.line());
                let why = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("{len} cells, but the header has {expected_len}")
                    }
                    _ => e.to_string(),
                };
                errors.push(format!("row {row}: {why}"));
            }
        }
    }
    rows
}

fn json_rows(text: &str, errors: &mut Vec<String>) -> Vec<(u64, Fields)> {
    let items: Vec<serde_json::Value> = match serde_json::from_str(text) {
        Ok(serde_json::Value::Array(items)) => items,
        Ok(_) => {
            errors.push("the JSON file must be an array of records".to_string());
            return Vec::new();
        }
        Err(e) => {
            errors.push(format!("not valid JSON: {e}"));
            return Vec::new();
        }
    };
    let mut rows = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let row = i as u64 + 1;
        let serde_json::Value::Object(obj) = item else {
            errors.push(format!("row {row}: not an object"));
            continue;
        };
        let mut fields = Fields::new();
        let mut ok = true;
        for (name, value) in obj {
            let Some(c) = column(&name) else {
                errors.push(format!(
                    "row {row}: unknown field {name:?} (expected {})",
                    COLUMNS.join(", ")
                ));
                ok = false;
                continue;
            };
            let cell = match value {
                serde_json::Value::Null => None,
                serde_json::Value::Bool(b) if c == "disabled" || c == "two_factor" => Some(b.to_string()),
                // An empty string is a mistake, not a way to say "none" (that is null).
                serde_json::Value::String(s) if s.is_empty() => {
                    errors.push(format!("row {row}: {c} is an empty string (use null or leave it out)"));
                    ok = false;
                    None
                }
                serde_json::Value::String(s) => Some(s),
                _ => {
                    errors.push(format!("row {row}: {c} must be a string"));
                    ok = false;
                    None
                }
            };
            fields.insert(c, cell);
        }
        if ok {
            rows.push((row, fields));
        }
    }
    rows
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A record from one row's cells, or every problem with it.
fn build(mut fields: Fields) -> Result<UserRecord, Vec<String>> {
    let mut take = |c: &str| fields.remove(c).flatten();
    let mut problems = Vec::new();
    let kind = match take("kind") {
        None => {
            problems.push("kind is empty (expected agent or user)".to_string());
            None
        }
        Some(k) => match k.to_ascii_lowercase().parse::<PortalKind>() {
            Ok(kind) => Some(kind),
            Err(_) => {
                problems.push(format!("kind {k:?} is not agent or user"));
                None
            }
        },
    };
    let disabled = match take("disabled") {
        None => false,
        Some(d) => parse_bool(&d).unwrap_or_else(|| {
            problems.push(format!("disabled {d:?} is not true/false, 1/0 or yes/no"));
            false
        }),
    };
    let two_factor = match take("two_factor") {
        None => false,
        Some(d) => parse_bool(&d).unwrap_or_else(|| {
            problems.push(format!("two_factor {d:?} is not true/false, 1/0 or yes/no"));
            false
        }),
    };
    // Parsed here, so a bad tenant is this row's problem, not a parse error.
    let mut tid_invalid = false;
    let tid = take("tid").and_then(|t| match t.parse::<TenantId>() {
        Ok(t) => Some(t),
        Err(_) => {
            problems.push(format!("tid {t:?} is not a GUID"));
            tid_invalid = true;
            None
        }
    });
    let rec = UserRecord {
        key: take("key").unwrap_or_default(),
        // Placeholder when the kind is invalid: the row is refused anyway.
        kind: kind.unwrap_or(PortalKind::User),
        email: take("email"),
        tid,
        oid: take("oid"),
        name: take("name"),
        client: take("client"),
        disabled,
        two_factor,
    };
    // With an invalid tid, "oid without tid" would only repeat the problem.
    problems.extend(
        rec.problems()
            .into_iter()
            .filter(|p| !(tid_invalid && p == super::OID_WITHOUT_TID)),
    );
    if problems.is_empty() { Ok(rec) } else { Err(problems) }
}

/// Keys, emails and identities must each be unique within the file.
fn duplicates(records: &[(u64, UserRecord)]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut keys: HashMap<&str, u64> = HashMap::new();
    let mut emails: HashMap<String, u64> = HashMap::new();
    let mut ids: HashMap<(String, String), u64> = HashMap::new();
    for (row, rec) in records {
        if let Some(first) = keys.insert(&rec.key, *row) {
            errors.push(format!("row {row}: key {:?} is also on row {first}", rec.key));
        }
        if let Some(e) = &rec.email
            && let Some(first) = emails.insert(email_key(e), *row)
        {
            errors.push(format!("row {row}: email {e:?} is also on row {first}"));
        }
        if let (Some(t), Some(o)) = (&rec.tid, &rec.oid)
            && let Some(first) = ids.insert((t.to_string(), o.to_ascii_lowercase()), *row)
        {
            errors.push(format!("row {row}: identity {t}:{o} is also on row {first}"));
        }
    }
    errors
}

/// Writes validated records: adds new keys, replaces changed records, leaves
/// identical ones alone. Checks first that no record outside the file holds
/// an email or identity the file gives to another key; on any such conflict
/// nothing is written.
pub async fn apply(dir: &BuiltinDirectory, records: Vec<UserRecord>) -> Result<Report, ImportError> {
    let in_file: HashSet<String> = records.iter().map(|r| r.key.clone()).collect();
    let mut merged = Vec::with_capacity(records.len());
    for rec in records {
        let old = dir.get(&rec.key).await?;
        merged.push(keep_binding(rec, old.as_ref()));
    }
    let mut errors = Vec::new();
    // A kept binding can collide with one the file gives to another row.
    let mut ids: HashMap<(String, String), &str> = HashMap::new();
    for rec in &merged {
        if let (Some(t), Some(o)) = (&rec.tid, &rec.oid)
            && let Some(first) = ids.insert((t.to_string(), o.to_ascii_lowercase()), &rec.key)
        {
            errors.push(format!(
                "record {:?}: identity {t}:{o} is also bound to record {first:?} (kept from the directory)",
                rec.key
            ));
        }
    }
    for rec in &merged {
        for c in dir.conflicts(rec).await? {
            // A holder that is in the file gives the slot up in this import
            // (or the file itself has a duplicate, reported above).
            if !in_file.contains(&c.other) {
                errors.push(format!("record {:?}: {}", rec.key, c.what));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ImportError::Invalid(errors));
    }
    let mut report = Report::default();
    for rec in &merged {
        match dir.put(rec).await? {
            Change::Added => report.added += 1,
            Change::Updated => report.updated += 1,
            Change::Unchanged => report.unchanged += 1,
        }
    }
    Ok(report)
}

/// Empty `tid`/`oid` in the file keep the binding the record already has.
fn keep_binding(mut rec: UserRecord, old: Option<&UserRecord>) -> UserRecord {
    let Some(old) = old else { return rec };
    if rec.oid.is_none() {
        match &rec.tid {
            None => {
                rec.tid = old.tid.clone();
                rec.oid = old.oid.clone();
            }
            Some(t) if old.tid.as_ref() == Some(t) => {
                rec.oid = old.oid.clone();
            }
            // Another tenant: the old binding cannot apply.
            Some(_) => {}
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Directory;
    use crate::directory::records::MemoryRecords;
    use std::sync::Arc;

    const T1: &str = "11111111-1111-4111-8111-111111111111";

    fn invalid(r: Result<Vec<UserRecord>, ImportError>) -> Vec<String> {
        match r {
            Err(ImportError::Invalid(v)) => v,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn csv_with_every_column() {
        let text = "\u{feff}key,kind,email,tid,oid,name,client,disabled\n\
                    ann,user,Ann@Contoso.com,AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA,o1,\"Ann, A.\",contoso,no\n\
                    bob , Agent ,,,,,,1\n\
                    \n\
                    cat,user,cat@contoso.com,,,,,\n";
        let recs = parse(text, Format::Csv).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(
            recs[0],
            UserRecord {
                key: "ann".into(),
                kind: PortalKind::User,
                email: Some("Ann@Contoso.com".into()),
                tid: Some("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa".parse().unwrap()),
                oid: Some("o1".into()),
                name: Some("Ann, A.".into()),
                client: Some("contoso".into()),
                disabled: false,
                two_factor: false,
            }
        );
        assert_eq!(recs[1].key, "bob");
        assert_eq!(recs[1].kind, PortalKind::Agent);
        assert_eq!(recs[1].email, None);
        assert!(recs[1].disabled);
        assert_eq!(recs[2].tid, None);
        assert!(!recs[2].disabled);
    }

    #[test]
    fn csv_columns_in_any_order_and_optional() {
        let recs = parse("Kind,Key\nuser,ann\n", Format::Csv).unwrap();
        assert_eq!(recs[0].key, "ann");
        assert_eq!(recs[0].email, None);
    }

    #[test]
    fn csv_every_problem_with_its_row() {
        let text = "key,kind,email,tid,oid,name,client,disabled\n\
                    ann,user,ann@contoso.com,,,,,\n\
                    ,robot,nope,x,o1,,,maybe\n\
                    bob,user,ANN@contoso.com,,,,,\n\
                    ann,agent,,,,,,\n\
                    short,user\n";
        let errors = invalid(parse(text, Format::Csv));
        let expected = [
            "row 3: kind \"robot\" is not agent or user",
            "row 3: disabled \"maybe\" is not true/false, 1/0 or yes/no",
            "row 3: key is empty",
            "row 3: email \"nope\" is not an email address",
            "row 3: tid \"x\" is not a GUID",
            "row 6: 2 cells, but the header has 8",
            "row 4: email \"ANN@contoso.com\" is also on row 2",
            "row 5: key \"ann\" is also on row 2",
        ];
        for e in expected {
            assert!(errors.iter().any(|x| x == e), "missing {e:?} in {errors:#?}");
        }
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
    }

    #[test]
    fn csv_header_problems() {
        let errors = invalid(parse("key,role,email\nann,user,a@b\n", Format::Csv));
        assert!(
            errors.iter().any(|e| e.contains("unknown column \"role\"")),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("no \"kind\" column")), "{errors:?}");
        let errors = invalid(parse("key,kind,key\n", Format::Csv));
        assert!(errors.iter().any(|e| e.contains("appears twice")), "{errors:?}");
    }

    #[test]
    fn oid_requires_tid_and_identities_are_unique() {
        let text = format!(
            "key,kind,tid,oid\na,user,,o1\nb,user,{T1},o2\nc,user,{},O2\n",
            T1.to_uppercase()
        );
        let errors = invalid(parse(&text, Format::Csv));
        assert!(
            errors.contains(&"row 2: oid is given without tid".to_string()),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.starts_with("row 4: identity")), "{errors:?}");
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn json_records() {
        let text = format!(
            r#"[{{"key":"ann","kind":"user","email":"ann@contoso.com","tid":"{T1}","oid":"o1","disabled":true}},
                {{"key":"bob","kind":"agent","name":null}}]"#
        );
        let recs = parse(&text, Format::Json).unwrap();
        assert_eq!(recs[0].tid.as_ref().map(TenantId::as_str), Some(T1));
        assert!(recs[0].disabled);
        assert_eq!(recs[1].kind, PortalKind::Agent);
        assert_eq!(recs[1].name, None);
        // Output of `serde_json::to_string(&records)` imports as is.
        let again = parse(&serde_json::to_string(&recs).unwrap(), Format::Json).unwrap();
        assert_eq!(again, recs);
    }

    #[test]
    fn json_problems() {
        let text = r#"[{"key":"ann","kind":"user","colour":"red"},
                       7,
                       {"key":"","kind":"user","oid":""},
                       {"key":"bob","kind":"user","disabled":"yes","tid":5},
                       {"key":"cat","kind":"robot","email":"cat"}]"#;
        let errors = invalid(parse(text, Format::Json));
        for e in [
            "row 1: unknown field \"colour\"",
            "row 2: not an object",
            "row 3: key is an empty string",
            "row 3: oid is an empty string",
            "row 4: tid must be a string",
            "row 5: kind \"robot\" is not agent or user",
            "row 5: email \"cat\" is not an email address",
        ] {
            assert!(errors.iter().any(|x| x.starts_with(e)), "missing {e:?} in {errors:#?}");
        }
        assert!(matches!(parse("{}", Format::Json), Err(ImportError::Invalid(v)) if v[0].contains("array")));
        assert!(matches!(parse("[", Format::Json), Err(ImportError::Invalid(v)) if v[0].contains("not valid JSON")));
    }

    #[test]
    fn format_by_extension() {
        assert_eq!(Format::from_path(Path::new("users.CSV")).unwrap(), Format::Csv);
        assert_eq!(Format::from_path(Path::new("/x/users.json")).unwrap(), Format::Json);
        assert!(matches!(
            Format::from_path(Path::new("users.txt")),
            Err(ImportError::Unreadable(_))
        ));
        assert!(matches!(
            Format::from_path(Path::new("users")),
            Err(ImportError::Unreadable(_))
        ));
    }

    fn dir() -> BuiltinDirectory {
        BuiltinDirectory::new(Arc::new(MemoryRecords::new()))
    }

    const FILE: &str = "key,kind,email,name\nann,user,ann@contoso.com,Ann\nbob,agent,bob@contoso.com,Bob\n";

    #[tokio::test]
    async fn apply_is_idempotent_and_reports_changes() {
        let d = dir();
        let r = apply(&d, parse(FILE, Format::Csv).unwrap()).await.unwrap();
        assert_eq!(
            r,
            Report {
                added: 2,
                updated: 0,
                unchanged: 0
            }
        );
        let r = apply(&d, parse(FILE, Format::Csv).unwrap()).await.unwrap();
        assert_eq!(
            r,
            Report {
                added: 0,
                updated: 0,
                unchanged: 2
            }
        );
        assert_eq!(r.to_string(), "0 added, 0 updated, 2 unchanged");
        let changed = FILE.replace("Bob\n", "Robert\n") + "cat,user,,\n";
        let r = apply(&d, parse(&changed, Format::Csv).unwrap()).await.unwrap();
        assert_eq!(
            r,
            Report {
                added: 1,
                updated: 1,
                unchanged: 1
            }
        );
        assert_eq!(d.list().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn reimport_keeps_bindings_made_at_sign_in() {
        let d = dir();
        apply(&d, parse(FILE, Format::Csv).unwrap()).await.unwrap();
        d.bind("ann", T1, "o1").await.unwrap();
        let r = apply(&d, parse(FILE, Format::Csv).unwrap()).await.unwrap();
        assert_eq!(r.unchanged, 2);
        assert_eq!(d.by_id(T1, "o1").await.unwrap().unwrap().key, "ann");
        // Giving a new identity moves the binding.
        let moved = format!("key,kind,email,name,tid,oid\nann,user,ann@contoso.com,Ann,{T1},o2\n");
        let r = apply(&d, parse(&moved, Format::Csv).unwrap()).await.unwrap();
        assert_eq!(r.updated, 1);
        assert_eq!(d.by_id(T1, "o1").await.unwrap(), None);
        assert_eq!(d.by_id(T1, "o2").await.unwrap().unwrap().key, "ann");
    }

    #[tokio::test]
    async fn conflicts_with_records_outside_the_file_change_nothing() {
        let d = dir();
        apply(&d, parse(FILE, Format::Csv).unwrap()).await.unwrap();
        d.bind("ann", T1, "o1").await.unwrap();
        let text = format!(
            "key,kind,email,tid,oid\ncat,user,cat@contoso.com,,\ndan,user,BOB@contoso.com,,\neve,user,,{T1},o1\n"
        );
        let err = apply(&d, parse(&text, Format::Csv).unwrap()).await.unwrap_err();
        let ImportError::Invalid(errors) = err else {
            panic!("{err:?}")
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("\"dan\"") && errors[0].contains("\"bob\""),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("\"eve\"") && errors[1].contains("\"ann\""),
            "{errors:?}"
        );
        assert!(d.get("cat").await.unwrap().is_none());
        assert_eq!(d.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn emails_can_be_swapped_within_one_file() {
        let d = dir();
        apply(&d, parse(FILE, Format::Csv).unwrap()).await.unwrap();
        let swapped = "key,kind,email,name\nann,user,bob@contoso.com,Ann\nbob,agent,ann@contoso.com,Bob\n";
        let r = apply(&d, parse(swapped, Format::Csv).unwrap()).await.unwrap();
        assert_eq!(r.updated, 2);
        assert_eq!(d.by_email("ann@contoso.com", T1).await.unwrap().unwrap().key, "bob");
        assert_eq!(d.by_email("bob@contoso.com", T1).await.unwrap().unwrap().key, "ann");
    }

    #[test]
    fn the_two_factor_flag_is_a_column_and_a_field() {
        let recs = parse("key,kind,two_factor\nann,user,yes\nbob,user,\n", Format::Csv).unwrap();
        assert!(recs[0].two_factor && !recs[1].two_factor);
        let recs = parse(r#"[{"key":"ann","kind":"user","two_factor":true}]"#, Format::Json).unwrap();
        assert!(recs[0].two_factor);
        assert!(parse("key,kind,two_factor\nann,user,maybe\n", Format::Csv).is_err());
        // Absent from stored records when false: older readers see nothing new.
        assert!(
            !serde_json::to_string(&recs[0].clone())
                .unwrap()
                .contains("two_factor\":false")
        );
    }
}
