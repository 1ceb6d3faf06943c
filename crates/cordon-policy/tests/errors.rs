//! A policy with several mistakes gets every one of them reported, in file order (line, then column):
//! type errors, unknown fields and invalid values alike, not only the first the parser met.

fn diags(text: &str) -> Vec<cordon_policy::Diagnostic> {
    match cordon_policy::load_text("many.toml", text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.diagnostics().to_vec(),
    }
}

fn at(d: &[cordon_policy::Diagnostic]) -> Vec<(usize, usize)> {
    d.iter().map(|d| (d.line, d.col)).collect()
}

#[test]
fn every_error_is_reported_in_file_order() {
    let text = r#"version = 1
name = 5
[net]
egres = "none"
allow = ["github.com:443", 7]
[fs]
read = ["src", "@system"]
tmp_size = "lots"
[limits]
memory = 4
processes = 0
[[test]]
read = "/etc/passwd"
expect = "maybe"
"#;
    let d = diags(text);
    let shown: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    let shown = shown.join("\n");
    let want: [(usize, usize, &str, &str); 8] = [
        (2, 8, "name", "invalid type"),
        (4, 1, "net.egres", "unknown field `egres`"),
        (5, 28, "net.allow[1]", "invalid type"),
        (7, 9, "fs.read[0]", "relative path `src`"),
        (8, 12, "fs.tmp_size", "does not start with a number"),
        (10, 10, "limits.memory", "invalid type"),
        (11, 13, "limits.processes", "out of range"),
        (14, 10, "test[0].expect", "`maybe` is not allow or deny"),
    ];
    assert_eq!(d.len(), want.len(), "every error, once:\n{shown}");
    for (x, (line, col, field, msg)) in d.iter().zip(want) {
        assert_eq!((x.line, x.col), (line, col), "position of `{msg}`:\n{shown}");
        assert!(x.field.starts_with(field), "field `{}` for `{msg}`:\n{shown}", x.field);
        assert!(x.message.contains(msg), "`{msg}` at {line}:{col}:\n{shown}");
    }
}

#[test]
fn errors_come_in_file_order_whatever_the_section_order() {
    // Sections in an order unlike the model's and the parser's (alphabetical) order.
    let text = "version = 1\n[tools.z]\ncommand = [1]\n[env]\nkeep = [\"A B\"]\n[tools.a]\ncommand = \"x\"\n[fs]\nhide = [\"a/b\"]\n";
    let d = diags(text);
    let p = at(&d);
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(p, sorted, "file order:\n{d:#?}");
    assert_eq!(p.iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 5, 7, 9], "{d:#?}");
}

#[test]
fn every_syntax_error_is_reported_too() {
    let d = diags("version = 1\n[fs\nread = [\"@system\"]\nname = = 3\n");
    assert!(d.len() >= 2, "{d:#?}");
    let p = at(&d);
    let mut sorted = p.clone();
    sorted.sort();
    assert_eq!(p, sorted, "{d:#?}");
    assert_eq!(d[0].line, 2, "{d:#?}");
}

#[test]
fn catch_all_allow_entries_are_warnings_with_their_position() {
    let text = "version = 1\n[net]\negress = \"proxy\"\nallow = [\"github.com:443\", \"0.0.0.0/0\"]\n[tools.db.net]\nallow = [\"127.0.0.0/8:5432\", \"127.0.0.1:5432\"]\n";
    let l = cordon_policy::load_text("wide.toml", text).unwrap_or_else(|e| panic!("{e}"));
    let w: Vec<String> = l.warnings().iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 2, "{w:#?}");
    assert!(
        w[0].starts_with("wide.toml:4:28: warning in `net.allow[1]`: `0.0.0.0/0` opens every IPv4 address"),
        "{w:#?}"
    );
    assert!(w[1].starts_with("wide.toml:6:10: warning in `tools.db.net.allow[0]`: `127.0.0.0/8:5432` opens the range 127.0.0.0/8 on port 5432"), "{w:#?}");
    assert!(cordon_policy::load("builtin:agent").map(|l| l.warnings().is_empty()).unwrap_or(false));
}

/// `fs.create` makes directories as the invoking user before the session: only in HOME, never a
/// credential store.
#[test]
fn fs_create_is_for_directories_in_home_only() {
    let d = diags("version = 1\n[fs]\ncreate = [\"/opt/cache\", \"~/.ssh\", \"~/.cache\"]\n");
    let shown: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(d.len(), 2, "{shown:#?}");
    assert!(shown[0].contains("fs.create[0]") && shown[0].contains("home only"), "{shown:#?}");
    assert!(shown[1].contains("fs.create[1]") && shown[1].contains("credential"), "{shown:#?}");
    assert!(cordon_policy::load_text("ok.toml", "version = 1\n[fs]\ncreate = [\"~/.cache\"]\n").is_ok());
}

/// `fs.review` (issue 19): workspace-relative patterns or `@host-exec-manual`; each mistake with its
/// place, field and a hint.
#[test]
fn review_patterns_are_checked_with_their_place_and_a_hint() {
    let text = "version = 1\n[fs]\nreview = [\"@host-exec-manual\", \"/etc/profile\", \"../Makefile\", \"\", \"ci/*.sh\", \"@host-exec-auto\"]\n";
    let d = diags(text);
    let shown: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    let shown = shown.join("\n");
    let want: [(usize, &str, &str, &str); 4] = [
        (32, "fs.review[1]", "relative to the workspace", "**/Makefile"),
        (48, "fs.review[2]", "`..`", "relative to the workspace"),
        (63, "fs.review[3]", "empty pattern", "e.g."),
        (78, "fs.review[5]", "unknown review group", "fs.protect"),
    ];
    assert_eq!(d.len(), want.len(), "{shown}");
    for (x, (col, field, msg, hint)) in d.iter().zip(want) {
        assert_eq!((x.line, x.col, x.field.as_str()), (3, col, field), "{shown}");
        assert!(x.message.contains(msg), "{shown}");
        assert!(x.hint.as_deref().unwrap_or("").contains(hint), "hint of {field}: {shown}");
    }
    let ok = cordon_policy::load_text("ok.toml", "version = 1\n[fs]\nreview = [\"@host-exec-manual\", \"ci/**\"]\n");
    assert!(ok.is_ok(), "{ok:?}");
}

/// `fs.review_mode` (issue 19): "list" (the default) or "hold"; anything else named with its place
/// and a hint; "hold" compiles to hold mode, a later file overriding an earlier one.
#[test]
fn review_mode_is_list_or_hold_with_its_place_and_a_hint() {
    let d = diags("version = 1\n[fs]\nreview_mode = \"patch\"\n");
    let shown: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(d.len(), 1, "{shown:#?}");
    assert_eq!((d[0].line, d[0].col, d[0].field.as_str()), (3, 15, "fs.review_mode"), "{shown:#?}");
    assert!(d[0].message.contains("unknown review mode `patch`"), "{shown:#?}");
    assert!(d[0].hint.as_deref().unwrap_or("").contains("\"hold\""), "{shown:#?}");
    let cx =
        cordon_policy::Context { home: "/nonexistent".into(), workspace: "/nonexistent/ws".into(), tmp: "/tmp".into() };
    let dir = std::env::temp_dir().join(format!("cordon-review-mode-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let file = dir.join("hold.toml");
    std::fs::write(&file, "version = 1\nextends = [\"builtin:agent\"]\n[fs]\nreview_mode = \"hold\"\n").expect("write");
    let held = cordon_policy::load_and_compile(file.to_str().expect("utf-8"), &cx).map(|c| c.1.fs.review_mode);
    let listed = cordon_policy::load_and_compile("builtin:agent", &cx).map(|c| c.1.fs.review_mode);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(held.expect("hold policy"), cordon_policy::review::ReviewMode::Hold);
    assert_eq!(listed.expect("agent"), cordon_policy::review::ReviewMode::List);
}
