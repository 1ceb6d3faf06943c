//! docs/events.schema.json is generated from the types: this test fails when the committed file and
//! the types disagree. `CORDON_BLESS=1 cargo test -p cordon-schema --test schema_file` rewrites it.

use std::path::Path;

#[test]
fn the_committed_events_schema_is_the_generated_one() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.schema.json");
    let want = cordon_schema::events_schema_text();
    if std::env::var_os("CORDON_BLESS").is_some() {
        std::fs::write(&file, &want).expect("write the schema");
    }
    let have = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        have == want,
        "{} differs from the schema generated from cordon_schema::Event\n  hint: CORDON_BLESS=1 cargo test -p cordon-schema --test schema_file",
        file.display()
    );
}

#[test]
fn the_schema_names_every_kind_and_layer() {
    let s = cordon_schema::events_schema();
    let text = s.to_string();
    for k in cordon_schema::Kind::ALL {
        assert!(text.contains(&format!("\"{k}\"")), "kind {k} missing from the schema");
    }
    for l in ["landlock", "seccomp", "network", "cgroup-bpf", "proxy", "dac", "landlock-or-dac"] {
        assert!(text.contains(&format!("\"{l}\"")), "layer {l} missing from the schema");
    }
}

/// `Kind::ALL` is kept by hand; the schema is derived from the enum itself. A variant missing from
/// ALL (and so from `Kind::parse` and the rules' kinds) fails here.
#[test]
fn every_kind_the_enum_has_is_in_kind_all() {
    let s = cordon_schema::events_schema();
    let names = s["properties"]["kind"]["enum"].as_array().expect("kind is an inline enum");
    assert_eq!(names.len(), cordon_schema::Kind::ALL.len());
    for n in names {
        let n = n.as_str().expect("a name");
        assert!(cordon_schema::Kind::parse(n).is_some(), "{n} is not in Kind::ALL");
    }
}
