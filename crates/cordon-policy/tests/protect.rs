//! `fs.protect` with `@host-exec-auto`, and `fs.unprotect`: what the agent profiles protect, why,
//! and how an opt-out is checked against the files a policy extends.

use cordon_policy::{decide, explain, load_text, Access, Context};
use std::path::Path;

fn cx() -> Context {
    Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() }
}

fn compiled(text: &str) -> cordon_policy::CompiledPolicy {
    let loaded = load_text("/nonexistent/p.toml", text).expect("valid");
    cordon_policy::compile(&loaded, &cx())
}

fn write(c: &cordon_policy::CompiledPolicy, rel: &str) -> decide::Decision {
    decide::fs(c, &Path::new("/home/u/ws").join(rel), Access { read: false, write: true, exec: false })
}

#[test]
fn the_agent_profiles_protect_the_files_a_host_tool_runs_and_say_why_and_how_to_allow() {
    for profile in ["agent", "build", "claude-code", "codex", "strict"] {
        let c = compiled(&format!("version = 1\nextends = [\"builtin:{profile}\"]\n"));
        for rel in [".envrc", ".vscode/tasks.json", ".idea/workspace.xml", ".husky/pre-commit", ".git/info/attributes"]
        {
            let d = write(&c, rel);
            assert!(!d.allow, "{profile}: {rel} is writable: {}", d.reason);
        }
        let d = write(&c, ".envrc");
        assert!(
            d.reason.starts_with(".envrc is protected (@host-exec-auto: direnv runs it on the host when you cd here)"),
            "{profile}: {}",
            d.reason
        );
        assert!(
            d.reason.contains("allow with --allow-write .envrc (one run) or [fs] unprotect = [\".envrc\"]"),
            "{}",
            d.reason
        );
        assert!(write(&c, "src/main.rs").allow, "{profile}");
    }
    // The workspace is read-only there anyway.
    for profile in ["readonly", "mcp-tool"] {
        let c = compiled(&format!("version = 1\nextends = [\"builtin:{profile}\"]\n"));
        assert!(c.fs.protect.is_empty(), "{profile}");
    }
}

#[test]
fn unprotect_lets_one_file_be_written_and_explain_lists_the_rest_with_why() {
    let c = compiled("version = 1\nextends = [\"builtin:agent\"]\n[fs]\nunprotect = [\".envrc\", \".idea\"]\n");
    assert!(write(&c, ".envrc").allow);
    assert!(write(&c, ".idea/workspace.xml").allow);
    assert!(!write(&c, ".envrc.local").allow);
    let e = explain::explain(&c);
    assert!(e.contains(".vscode/tasks.json (@host-exec-auto: VS Code runs its `folderOpen` tasks"), "{e}");
    assert!(e.contains(".git/hooks (fs.protect `.git/hooks` from builtin:agent)"), "{e}");
    assert!(!e.contains("    .envrc (") && !e.contains("    .idea/ ("), "{e}");
}

#[test]
fn an_opt_out_of_a_path_nothing_protects_is_an_error_at_its_place() {
    let err = load_text("p.toml", "version = 1\nextends = [\"builtin:agent\"]\n[fs]\nunprotect = [\"src/main.rs\"]\n")
        .expect_err("not protected");
    let d = &err.diagnostics()[0];
    assert_eq!((d.line, d.col, d.field.as_str()), (4, 14, "fs.unprotect[0]"), "{d}");
    assert!(d.message.contains("`src/main.rs` is not protected"), "{d}");
    assert!(d.hint.as_deref().is_some_and(|h| h.contains(".envrc") && h.contains(".git/hooks")), "{d}");
}
