//! Context-free checks of one policy file. Every finding points at the value's line and column.

use crate::error::{Diagnostic, Source};
use crate::model::*;
use crate::paths::{check_entry, check_name_pattern, check_relative, group};
use crate::{netspec, syscalls, units};

pub const CURRENT_VERSION: i64 = 1;

struct V<'a> {
    src: &'a Source<'a>,
    out: Vec<Diagnostic>,
}

impl V<'_> {
    fn err<T>(&mut self, v: &S<T>, field: impl Into<String>, msg: impl Into<String>, hint: Option<String>) {
        self.out.push(self.src.diag(v.span(), field, msg, hint));
    }
}

pub fn validate(raw: &RawPolicy, src: &Source) -> Vec<Diagnostic> {
    let mut v = V { src, out: vec![] };
    match &raw.version {
        None => v.out.push(src.diag(
            0..0,
            "version",
            "missing `version`",
            Some(format!("add `version = {CURRENT_VERSION}` at the top")),
        )),
        Some(ver) if *ver.get_ref() != CURRENT_VERSION => v.err(
            ver,
            "version",
            format!("unsupported policy version {}", ver.get_ref()),
            Some(format!("this cordon reads version {CURRENT_VERSION}")),
        ),
        _ => {}
    }
    for (i, e) in raw.extends.iter().enumerate() {
        let s = e.get_ref();
        if let Some(name) = s.strip_prefix("builtin:") {
            if crate::builtin::text(name).is_none() {
                v.err(
                    e,
                    format!("extends[{i}]"),
                    format!("unknown built-in profile `{name}`"),
                    Some(format!("built-in profiles: {}", crate::builtin::names().join(", "))),
                );
            }
        } else if s.is_empty() {
            v.err(
                e,
                format!("extends[{i}]"),
                "empty profile name",
                Some("write `builtin:agent` or a path to a policy file".into()),
            );
        }
    }
    fs(&mut v, &raw.fs, "fs");
    net(&mut v, &raw.net, "net");
    sys(&mut v, &raw.syscalls, "syscalls");
    limits(&mut v, &raw.limits, "limits");
    env(&mut v, &raw.env, "env");
    for (i, r) in raw.monitor.rules.iter().enumerate() {
        if r.get_ref().is_empty() {
            v.err(r, format!("monitor.rules[{i}]"), "empty rule set name", Some("e.g. `builtin:agent`".into()));
        }
    }
    for (name, t) in &raw.tools {
        let p = format!("tools.{name}");
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            v.err(t, &p, format!("tool name `{name}` may only use letters, digits, `-` and `_`"), None);
        }
        let t_ref = t.get_ref();
        for (i, c) in t_ref.command.iter().enumerate() {
            if c.get_ref().is_empty() {
                v.err(c, format!("{p}.command[{i}]"), "empty command word", None);
            }
        }
        if let Some(f) = &t_ref.fs {
            fs(&mut v, f, &format!("{p}.fs"));
        }
        if let Some(n) = &t_ref.net {
            net(&mut v, n, &format!("{p}.net"));
        }
        if let Some(s) = &t_ref.syscalls {
            sys(&mut v, s, &format!("{p}.syscalls"));
        }
        if let Some(l) = &t_ref.limits {
            limits(&mut v, l, &format!("{p}.limits"));
        }
        if let Some(e) = &t_ref.env {
            env(&mut v, e, &format!("{p}.env"));
        }
    }
    for (i, t) in raw.tests.iter().enumerate() {
        test(&mut v, t, &format!("test[{i}]"));
    }
    v.out
}

fn secret_hit(raw: &str) -> Option<&'static str> {
    let secrets = group("@secrets").map(|g| g.paths).unwrap_or(&[]);
    let owned;
    let norm = match raw.strip_prefix("$HOME") {
        Some(r) => {
            owned = format!("~{r}");
            owned.as_str()
        }
        None => raw,
    };
    let norm = norm.trim_end_matches('/');
    secrets.iter().copied().find(|s| norm == *s || (norm.starts_with(s) && norm.as_bytes().get(s.len()) == Some(&b'/')))
}

fn paths(v: &mut V, list: &[S<String>], field: &str, allowlist: bool) {
    for (i, e) in list.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if let Err((m, h)) = check_entry(e.get_ref()) {
            v.err(e, f, m, h);
            continue;
        }
        if allowlist {
            if e.get_ref() == "@secrets" {
                v.err(
                    e,
                    f,
                    "secrets are never in an allowlist",
                    Some(
                        "remove `@secrets`; grant the one tool that needs a credential its own [tools] profile".into(),
                    ),
                );
            } else if let Some(s) = secret_hit(e.get_ref()) {
                v.err(
                    e,
                    f,
                    format!(
                        "`{}` is a credential store (`{s}` is in @secrets); secrets are never in an allowlist",
                        e.get_ref()
                    ),
                    Some("pass the one credential a task needs through [env] set or a tool profile instead".into()),
                );
            }
        }
    }
}

fn fs(v: &mut V, f: &RawFs, p: &str) {
    paths(v, &f.read, &format!("{p}.read"), true);
    paths(v, &f.write, &format!("{p}.write"), true);
    paths(v, &f.exec, &format!("{p}.exec"), true);
    paths(v, &f.deny, &format!("{p}.deny"), false);
    paths(v, &f.create, &format!("{p}.create"), true);
    for (i, e) in f.create.iter().enumerate() {
        let r = e.get_ref();
        if !(r.starts_with("~/") || r.starts_with("$HOME/")) {
            v.err(
                e,
                format!("{p}.create[{i}]"),
                "fs.create makes directories in the user's home only",
                Some("write a path starting with `~/`, e.g. \"~/.cache\"".into()),
            );
        }
    }
    for (list, name) in [(&f.protect, "protect"), (&f.unprotect, "unprotect")] {
        for (i, e) in list.iter().enumerate() {
            if let Err((m, h)) = crate::protect::check(e.get_ref()) {
                v.err(e, format!("{p}.{name}[{i}]"), m, h);
            }
        }
    }
    for (i, e) in f.hide.iter().enumerate() {
        if let Err((m, h)) = check_name_pattern(e.get_ref()) {
            v.err(e, format!("{p}.hide[{i}]"), m, h);
        }
    }
    for (i, e) in f.review.iter().enumerate() {
        if let Err((m, h)) = crate::review::check(e.get_ref()) {
            v.err(e, format!("{p}.review[{i}]"), m, h);
        }
    }
    for (i, e) in f.sanitize.iter().enumerate() {
        if crate::sanitize::format_of(e.get_ref()).is_none() {
            let m = format!("cordon does not know how to take the secrets out of `{}`", e.get_ref());
            let h = format!(
                "fs.sanitize takes {}; a credential file of another kind stays in fs.deny",
                crate::sanitize::known_names()
            );
            v.err(e, format!("{p}.sanitize[{i}]"), m, Some(h));
        }
    }
    if let Some(m) = &f.review_mode {
        if crate::review::ReviewMode::parse(m.get_ref()).is_none() {
            v.err(
                m,
                format!("{p}.review_mode"),
                format!("unknown review mode `{}`", m.get_ref()),
                Some(
                    "use \"list\" (changes written in place and listed) or \"hold\" (held as a patch for you to apply)"
                        .into(),
                ),
            );
        }
    }
    if let Some(t) = &f.tmp_size {
        match units::parse_size(t.get_ref()) {
            Err(m) => v.err(t, format!("{p}.tmp_size"), m, Some("write a size such as \"1GiB\"".into())),
            Ok(n) if n < (1 << 20) => v.err(t, format!("{p}.tmp_size"), "tmp_size below 1MiB", None),
            _ => {}
        }
    }
}

fn net(v: &mut V, n: &RawNet, p: &str) {
    if let Some(e) = &n.egress {
        if !["none", "proxy", "open"].contains(&e.get_ref().as_str()) {
            v.err(
                e,
                format!("{p}.egress"),
                format!("unknown egress mode `{}`", e.get_ref()),
                Some("use \"none\", \"proxy\" or \"open\"".into()),
            );
        }
    }
    for (i, a) in n.allow.iter().enumerate() {
        if let Err(m) = netspec::parse_allow_item(a.get_ref()) {
            v.err(
                a,
                format!("{p}.allow[{i}]"),
                m,
                Some(format!(
                    "write HOST[:PORT] or a preset, e.g. \"github.com:443\", \"*.pypi.org:443\", \"10.0.0.0/8\", \"@pypi\" ({})",
                    crate::presets::names()
                )),
            );
        }
    }
    for (i, l) in n.listen.iter().enumerate() {
        let x = *l.get_ref();
        if !(1..=65535).contains(&x) {
            v.err(l, format!("{p}.listen[{i}]"), format!("port {x} is out of range 1-65535"), None);
        }
    }
    for (i, e) in n.publish.iter().enumerate() {
        if let Err(m) = netspec::parse_publish(e.get_ref()) {
            let hint = "write [HOST_IP:]HOST_PORT:SESSION_PORT, e.g. \"8080:3000\" (host loopback port 8080 to the session's port 3000)";
            v.err(e, format!("{p}.publish[{i}]"), m, Some(hint.into()));
        }
    }
}

fn sys(v: &mut V, s: &RawSyscalls, p: &str) {
    for (i, n) in s.deny.iter().enumerate() {
        if !syscalls::is_known_syscall(n.get_ref()) {
            v.err(
                n,
                format!("{p}.deny[{i}]"),
                format!("unknown syscall `{}`", n.get_ref()),
                Some("use the kernel's name, e.g. \"ptrace\" or \"openat\"".into()),
            );
        }
    }
    let base = if s.allow.is_empty() { vec![] } else { syscalls::baseline() };
    for (i, n) in s.allow.iter().enumerate() {
        if !base.iter().any(|r| &r.name == n.get_ref()) {
            let hint = if syscalls::is_known_syscall(n.get_ref()) {
                "only baseline entries can be lifted; this one is not denied by the baseline"
            } else {
                "unknown syscall name"
            };
            v.err(
                n,
                format!("{p}.allow[{i}]"),
                format!("`{}` is not in the baseline deny list", n.get_ref()),
                Some(hint.into()),
            );
        }
    }
    if let Some(a) = &s.action {
        if !["errno", "kill"].contains(&a.get_ref().as_str()) {
            v.err(
                a,
                format!("{p}.action"),
                format!("unknown action `{}`", a.get_ref()),
                Some("use \"errno\" (fail the call) or \"kill\"".into()),
            );
        }
    }
}

fn limits(v: &mut V, l: &RawLimits, p: &str) {
    if let Some(m) = &l.memory {
        match units::parse_size(m.get_ref()) {
            Err(e) => v.err(m, format!("{p}.memory"), e, Some("write a size such as \"4GiB\" or \"512MiB\"".into())),
            Ok(n) if n < 16 << 20 => v.err(
                m,
                format!("{p}.memory"),
                "memory limit below 16MiB would stop any program",
                Some("use at least \"64MiB\"".into()),
            ),
            _ => {}
        }
    }
    if let Some(n) = &l.processes {
        if !(1..=1_000_000).contains(n.get_ref()) {
            v.err(
                n,
                format!("{p}.processes"),
                format!("{} is out of range 1-1000000", n.get_ref()),
                Some("hundreds is typical, e.g. 512".into()),
            );
        }
    }
    if let Some(c) = &l.cpu {
        let x = *c.get_ref();
        if !(x > 0.0 && x <= 4096.0 && x.is_finite()) {
            v.err(
                c,
                format!("{p}.cpu"),
                format!("cpu {x} must be a number of CPUs above 0"),
                Some("e.g. 2 or 0.5".into()),
            );
        }
    }
    if let Some(w) = &l.wall_time {
        match units::parse_duration(w.get_ref()) {
            Err(e) => v.err(w, format!("{p}.wall_time"), e, Some("write a duration such as \"2h\" or \"90s\"".into())),
            Ok(d) if d.as_secs() == 0 => v.err(w, format!("{p}.wall_time"), "wall_time must be at least 1s", None),
            _ => {}
        }
    }
    if let Some(n) = &l.open_files {
        if !(16..=1 << 20).contains(n.get_ref()) {
            v.err(n, format!("{p}.open_files"), format!("{} is out of range 16-1048576", n.get_ref()), None);
        }
    }
}

fn env_pattern_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*')
}

fn env(v: &mut V, e: &RawEnv, p: &str) {
    for (list, name) in [(&e.keep, "keep"), (&e.drop, "drop")] {
        for (i, x) in list.iter().enumerate() {
            if !env_pattern_ok(x.get_ref()) {
                v.err(
                    x,
                    format!("{p}.{name}[{i}]"),
                    format!("`{}` is not a variable name pattern", x.get_ref()),
                    Some("letters, digits, `_` and `*` wildcards, e.g. \"AWS_*\"".into()),
                );
            }
        }
    }
    for (k, x) in &e.set {
        if k.is_empty() || k.contains('*') || !env_pattern_ok(k) || k.starts_with(|c: char| c.is_ascii_digit()) {
            v.err(x, format!("{p}.set.{k}"), format!("`{k}` is not a valid variable name"), None);
        } else if k.starts_with("LD_") {
            v.err(
                x,
                format!("{p}.set.{k}"),
                "loader variables (LD_*) are always removed",
                Some("LD_PRELOAD and friends let code change every program in the sandbox".into()),
            );
        }
        if x.get_ref().contains('\0') {
            v.err(x, format!("{p}.set.{k}"), "value contains a NUL byte", None);
        }
    }
}

fn test(v: &mut V, t: &S<RawTest>, p: &str) {
    let r = t.get_ref();
    let probes = [&r.read, &r.write, &r.exec, &r.connect, &r.env, &r.syscall];
    let n = probes.iter().filter(|x| x.is_some()).count();
    if n != 1 {
        v.err(
            t,
            p,
            if n == 0 {
                "a test needs one of read, write, exec, connect, env or syscall"
            } else {
                "a test takes exactly one of read, write, exec, connect, env or syscall"
            },
            Some("e.g. `read = \"~/.ssh/id_rsa\"` with `expect = \"deny\"`".into()),
        );
    }
    match &r.expect {
        None => v.err(
            t,
            format!("{p}.expect"),
            "missing `expect`",
            Some("add `expect = \"allow\"` or `expect = \"deny\"`".into()),
        ),
        Some(e) if !["allow", "deny"].contains(&e.get_ref().as_str()) => {
            v.err(e, format!("{p}.expect"), format!("`{}` is not allow or deny", e.get_ref()), None)
        }
        _ => {}
    }
    for (x, name) in [(&r.read, "read"), (&r.write, "write"), (&r.exec, "exec")] {
        if let Some(x) = x {
            let s = x.get_ref();
            let res = if s.starts_with(['/', '~', '$', '@']) { check_entry(s) } else { check_relative(s) };
            if let Err((m, h)) = res {
                v.err(x, format!("{p}.{name}"), m, h);
            } else if s.starts_with('@') {
                v.err(x, format!("{p}.{name}"), "a test probes one path, not a group", None);
            }
        }
    }
    if let Some(c) = &r.connect {
        match netspec::parse_allow(c.get_ref()) {
            Ok(a) if a.port.is_none() => v.err(c, format!("{p}.connect"), "connect needs HOST:PORT", None),
            Err(m) => v.err(c, format!("{p}.connect"), m, None),
            _ => {}
        }
    }
    if let Some(s) = &r.syscall {
        if !syscalls::is_known_syscall(s.get_ref()) {
            v.err(s, format!("{p}.syscall"), format!("unknown syscall `{}`", s.get_ref()), None);
        }
    }
}
