//! Every malformed policy in tests/corpus/bad is rejected with an error at the position its first
//! line names (`# expect: LINE:COL substring`). No panic, no acceptance.

use std::path::PathBuf;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/bad")
}

#[test]
fn malformed_policies_fail_at_the_named_position() {
    let mut files: Vec<_> = std::fs::read_dir(corpus())
        .expect("corpus dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "corpus has only {} cases", files.len());
    let mut failures = vec![];
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read");
        let first = text.lines().next().unwrap_or("");
        let spec = first.strip_prefix("# expect: ").expect("first line is # expect: LINE:COL substring");
        let (pos, sub) = spec.split_once(' ').unwrap_or((spec, ""));
        let (l, c) = pos.split_once(':').expect("LINE:COL");
        let (l, c): (usize, usize) = (l.parse().expect("line"), c.parse().expect("col"));
        match cordon_policy::load(&f.display().to_string()) {
            Ok(_) => failures.push(format!("{}: accepted", f.display())),
            Err(e) => {
                let d = e.diagnostics();
                let Some(first) = d.first() else {
                    failures.push(format!("{}: error without position: {e}", f.display()));
                    continue;
                };
                if (first.line, first.col) != (l, c) || !first.message.contains(sub) {
                    failures.push(format!(
                        "{}: expected {l}:{c} `{sub}`, got {}:{} `{}`",
                        f.display(),
                        first.line,
                        first.col,
                        first.message
                    ));
                }
                assert!(first.file.ends_with(".toml"), "diagnostic names its file");
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), files.len(), failures.join("\n"));
}

#[test]
fn builtin_profiles_load_and_their_examples_hold() {
    let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
    for name in cordon_policy::builtin::names() {
        let (_, c) =
            cordon_policy::load_and_compile(&format!("builtin:{name}"), &cx).unwrap_or_else(|e| panic!("{name}: {e}"));
        for t in &c.tests {
            let d = cordon_policy::decide::example(&c, &t.probe);
            assert_eq!(d.allow, t.expect_allow, "builtin:{name} example `{}` at {}: {}", t.name, t.at, d.reason);
        }
    }
}
