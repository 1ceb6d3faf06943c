//! Loading rule sets from real files: every failure names the rule file (not a policy file), says
//! what is wrong and keeps the underlying error as its source.

use std::error::Error as _;
use std::path::PathBuf;

/// A fresh directory under the system temp dir, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("cordon-rules-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_missing_rule_file_is_reported_as_a_rule_file_with_its_io_error_as_source() {
    let tmp = Tmp::new("missing");
    let path = tmp.0.join("rules.toml");
    let spec = path.display().to_string();
    let e = cordon_rules::load(&spec).expect_err("no such file");
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("cannot read rule file {spec}: ")), "{msg}");
    assert!(!msg.contains("policy"), "a rule file is not a policy file: {msg}");
    assert!(msg.contains("hint: "), "{msg}");
    let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>()).expect("the io::Error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn an_unknown_builtin_rule_set_names_the_ones_there_are() {
    let e = cordon_rules::load("builtin:nope").expect_err("no such built-in");
    let msg = e.to_string();
    assert!(msg.contains("no built-in rule set `nope`") && msg.contains("builtin:agent"), "{msg}");
    assert!(!msg.contains("policy"), "{msg}");
    assert!(!msg.contains("os error"), "not an I/O error: {msg}");
}

#[test]
fn a_directory_as_a_rule_file_is_refused_naming_it() {
    let tmp = Tmp::new("dir");
    let spec = tmp.0.display().to_string();
    let msg = cordon_rules::load(&spec).expect_err("a directory").to_string();
    assert!(msg.contains(&spec) && msg.contains("directory, not a regular file") && msg.contains("hint: "), "{msg}");
    assert!(!msg.contains("policy file"), "{msg}");
}

#[test]
fn a_bad_rule_in_a_file_is_reported_at_its_position_in_that_file() {
    let tmp = Tmp::new("bad");
    let path = tmp.0.join("r.toml");
    std::fs::write(&path, "version = 1\n[[rule]]\nid = \"x\"\nkind = \"opne\"\naction = \"alert\"\nreason = \"r\"\n")
        .expect("write");
    let spec = path.display().to_string();
    let e = cordon_rules::load(&spec).expect_err("unknown kind");
    let d = e.diagnostics();
    assert_eq!(d.len(), 1, "{e}");
    assert_eq!((d[0].file.as_str(), d[0].line, d[0].col), (spec.as_str(), 4, 8), "{e}");
    assert!(e.to_string().starts_with(&format!("{spec}:4:8: error")), "{e}");
    assert!(e.source().is_none(), "diagnostics have no underlying error");
}

/// A rule naming a field its kind's events do not have would never fire: it is an error at load,
/// with the file, line, field and the fields there are (a rule about `tool` on exec events sat in
/// the built-in set unnoticed until this check came).
#[test]
fn a_field_the_kind_does_not_have_is_an_error_naming_the_fields_there_are() {
    let text = r#"version = 1

[[rule]]
id = "typo"
kind = "open"
when = { "pth.prefix" = "/etc" }
action = "alert"
reason = "{comm} opened {pth}"

[[rule]]
id = "record-field"
kind = "denial"
when = { "what.prefix" = "ptrace", "host.eq" = "x" }
action = "alert"
reason = "{what}"
"#;
    let e = cordon_rules::load_text("r.toml", text).expect_err("unknown fields");
    let msg = e.to_string();
    assert!(msg.contains("r.toml:6:") && msg.contains("rule[0].when.pth.prefix"), "{msg}");
    assert!(msg.contains("`open` has no field `pth`"), "{msg}");
    assert!(msg.contains("rule[0].reason") && msg.contains("`{pth}`"), "{msg}");
    assert!(msg.contains("fields of `open`: ") && msg.contains("path"), "{msg}");
    assert!(msg.contains("rule[1].when.host.eq") && msg.contains("`denial` has no field `host`"), "{msg}");
    assert!(!msg.contains("`what`"), "`what` is a field of denial records: {msg}");
    // The same rules with the right names load.
    let good = text.replace("pth", "path").replace(", \"host.eq\" = \"x\"", "");
    cordon_rules::load_text("r.toml", &good).expect("good fields load");
}
