//! `cordon policy explain`: the compiled policy in plain words. It describes the same data the
//! sandbox plans are built from, so what is explained is what is enforced.

use crate::compiled::*;
use crate::units::{fmt_duration, fmt_size};
use std::collections::HashMap;
use std::fmt::Write;

fn list_paths(c: &CompiledPolicy, f: impl Fn(&Access) -> bool) -> String {
    let mut groups: Vec<(String, Vec<String>)> = vec![];
    let mut group_at: HashMap<&str, usize> = HashMap::new();
    for r in c.fs.rules.iter().filter(|r| f(&r.access)) {
        let p = shorten(c, &r.path.display().to_string());
        match group_at.get(r.entry.as_str()) {
            Some(&i) => groups[i].1.push(p),
            None => {
                group_at.insert(&r.entry, groups.len());
                groups.push((r.entry.clone(), vec![p]));
            }
        }
    }
    if groups.is_empty() {
        return "nothing".into();
    }
    groups
        .into_iter()
        .map(|(e, v)| {
            if v.len() == 1 && v[0] == e {
                e
            } else if e.starts_with('@') && v.len() > 4 {
                format!("{e} ({}, {} … {} paths)", v[0], v[1], v.len())
            } else if e.starts_with('@') {
                format!("{e} ({})", v.join(", "))
            } else {
                v.join(", ")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The host trees bound into the session's root, per entry, each read-only or read-write (a path
/// is writable when any grant says so). The session's own mounts (/tmp, /dev/shm, /run, /proc) and
/// the device nodes are not host trees.
fn view(c: &CompiledPolicy) -> String {
    use std::path::Path;
    let own =
        |p: &Path| ["/tmp", "/dev", "/run", "/proc"].iter().any(|o| p.starts_with(o)) && p != c.workspace.as_path();
    // Linear in the policy's size: ancestors are looked up, not every rule compared with every other.
    let writes: std::collections::HashSet<&Path> =
        c.fs.rules.iter().filter(|r| r.access.write).map(|r| r.path.as_path()).collect();
    let writable = |p: &Path| p.ancestors().any(|a| writes.contains(a));
    let mut groups: Vec<(String, bool, Vec<String>)> = vec![];
    let mut group_at: HashMap<(&str, bool), usize> = HashMap::new();
    for r in c.fs.rules.iter().filter(|r| (r.access.read || r.access.write || r.access.exec) && !own(&r.path)) {
        let w = writable(&r.path);
        let p = shorten(c, &r.path.display().to_string());
        match group_at.get(&(r.entry.as_str(), w)) {
            Some(&i) => groups[i].2.push(p),
            None => {
                group_at.insert((r.entry.as_str(), w), groups.len());
                groups.push((r.entry.clone(), w, vec![p]));
            }
        }
    }
    if groups.is_empty() {
        return "no host tree".into();
    }
    groups
        .into_iter()
        .map(|(e, w, v)| {
            let how = if w { "read-write" } else { "read-only" };
            if v.len() == 1 && v[0] == e {
                format!("{e} {how}")
            } else if e.starts_with('@') && v.len() > 4 {
                format!("{e} {how} ({}, {} … {} paths)", v[0], v[1], v.len())
            } else if e.starts_with('@') {
                format!("{e} {how} ({})", v.join(", "))
            } else {
                format!("{} {how}", v.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn shorten(c: &CompiledPolicy, p: &str) -> String {
    let h = c.home.display().to_string();
    if p == h {
        "~".into()
    } else if let Some(r) = p.strip_prefix(&format!("{h}/")) {
        format!("~/{r}")
    } else {
        p.to_string()
    }
}

/// `fs.review`: what is listed at the end of the session and why, per entry.
fn review(c: &CompiledPolicy) -> String {
    if c.fs.review.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "  writable, but every change is listed at the end of the session, recorded and alerted on \
         (they run later outside the sandbox, when a person runs something):\n",
    );
    let mut entries: Vec<(&str, Vec<&str>)> = vec![];
    for p in &c.fs.review {
        match entries.iter_mut().find(|(e, _)| *e == p.entry) {
            Some((_, v)) => v.push(&p.pattern),
            None => entries.push((&p.entry, vec![&p.pattern])),
        }
    }
    for (entry, pats) in entries {
        if let Some(g) = crate::hostexec::workspace_group(entry) {
            let _ = writeln!(s, "    {entry} ({}): {}", g.about, pats.join(", "));
        } else {
            let origin = c.fs.review.iter().find(|p| p.entry == entry).map(|p| p.origin.as_str()).unwrap_or("");
            let _ = writeln!(s, "    {entry} (named by {origin})");
        }
    }
    if c.fs.review_mode == crate::review::ReviewMode::Hold {
        s.push_str(
            "    review_mode = \"hold\": at the end those changes are undone on disk and written to a patch \
             (outside the workspace) for you to apply\n",
        );
    }
    s
}

pub fn explain(c: &CompiledPolicy) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Policy `{}` ({})", c.name, c.sources.join(" -> "));
    if !c.description.is_empty() {
        let _ = writeln!(s, "{}", c.description);
    }
    let _ = writeln!(s, "Workspace: {}", c.workspace.display());
    let _ = writeln!(s, "\nFiles (everything not listed is neither readable nor writable):");
    let _ = writeln!(s, "  can read:   {}", list_paths(c, |a| a.read));
    let _ = writeln!(s, "  can write:  {}", list_paths(c, |a| a.write));
    let _ = writeln!(s, "  can run:    {}", list_paths(c, |a| a.exec));
    if !c.fs.deny.is_empty() {
        let v: Vec<_> = c.fs.deny.iter().map(|m| shorten(c, &m.path.display().to_string())).collect();
        let shown =
            if v.len() > 8 { format!("{} … and {} more", v[..8].join(", "), v.len() - 8) } else { v.join(", ") };
        let _ = writeln!(s, "  never readable, even inside the trees above ({} paths): {shown}", v.len());
    }
    if !c.fs.protect.is_empty() {
        let _ = writeln!(
            s,
            "  read-only inside the workspace (and in a bare git repository the session can write), and not to be created when absent (allow one with --allow-write PATH or [fs] unprotect):"
        );
        for m in &c.fs.protect {
            let _ = writeln!(s, "    {} ({})", m.entry, m.describe());
        }
    }
    if !c.fs.hide.is_empty() {
        let _ = writeln!(s, "  unreadable files in the workspace: {}", c.fs.hide.join(", "));
    }
    s.push_str(&review(c));
    if !c.fs.create.is_empty() {
        let v: Vec<_> = c.fs.create.iter().map(|m| m.entry.clone()).collect();
        let _ = writeln!(
            s,
            "  made before the session when missing (so the caches above work on first use): {}",
            v.join(", ")
        );
    }
    let _ = writeln!(s, "  /tmp is private to the session ({}), and gone when it ends", fmt_size(c.fs.tmp_size));
    if c.fs.watch_writes {
        let _ = writeln!(s, "  refused writes are named in the summary, with their fix, without root (the write watch: a round trip to cordon per write-intent call; [fs] watch_writes = false turns it off)");
    } else {
        let _ = writeln!(s, "  refused writes are refused all the same but not named without --monitor ([fs] watch_writes = false: the write watch is off)");
    }
    if c.namespaces.mount {
        let _ = writeln!(
            s,
            "  the session sees only: {}; its own /tmp, /dev/shm, /run and /proc; the granted device nodes. \
             Nothing else exists inside: any other path is \"No such file or directory\"",
            view(c)
        );
    } else {
        let _ = writeln!(
            s,
            "  the host's whole tree is visible (no mount namespace): only the rules above refuse what is not listed"
        );
    }
    let _ = writeln!(s, "\nNetwork:");
    match c.net.egress {
        Egress::None => {
            let _ = writeln!(s, "  none: no connection leaves the session; only its own loopback works");
        }
        Egress::Proxy => {
            let v: Vec<_> = c.net.allow.iter().map(|a| a.text.clone()).collect();
            let _ = writeln!(
                s,
                "  only through cordon's egress proxy, to: {}",
                if v.is_empty() { "nothing".into() } else { v.join(", ") }
            );
        }
        Egress::Open => {
            let _ = writeln!(s, "  OPEN: the session may connect anywhere the host can (warned at every run)");
        }
    }
    for p in &c.net.publish {
        let _ = writeln!(s, "  published to the host: {p}");
    }
    if !c.net.listen.is_empty() {
        let _ = writeln!(s, "  may listen on: {:?}", c.net.listen);
    }
    let _ = writeln!(s, "\nProcesses and kernel:");
    let _ = writeln!(
        s,
        "  no capabilities, no privilege gain through setuid programs (no_new_privs); LD_* variables removed"
    );
    let mut cats: Vec<(String, Vec<String>)> = vec![];
    for r in c.syscalls.iter().filter(|r| r.action != crate::syscalls::DenyAction::Supervise) {
        let cat = r.reason.split(':').next().unwrap_or("other").to_string();
        let item = if r.when.is_empty() { r.name.clone() } else { format!("{} (some arguments)", r.name) };
        match cats.iter_mut().find(|(k, _)| *k == cat) {
            Some((_, v)) => {
                if !v.contains(&item) {
                    v.push(item)
                }
            }
            None => cats.push((cat, vec![item])),
        }
    }
    let _ = writeln!(
        s,
        "  denied system calls ({} rules, {}):",
        c.syscalls.len(),
        if c.kill_on_deny { "the process is killed" } else { "the call fails with an error" }
    );
    for (k, v) in cats {
        let _ = writeln!(s, "    {k}: {}", v.join(", "));
    }
    let ns = c.namespaces;
    let names: Vec<&str> = [("pid", ns.pid), ("mount", ns.mount), ("ipc", ns.ipc), ("uts", ns.uts), ("net", ns.net)]
        .iter()
        .filter(|(_, b)| *b)
        .map(|(n, _)| *n)
        .collect();
    let _ = writeln!(s, "  own namespaces: {}", if names.is_empty() { "none".into() } else { names.join(", ") });
    if ns.pid {
        let _ = writeln!(s, "  other processes are invisible; every process of the session ends with it");
    }
    let _ = writeln!(s, "\nLimits:");
    let l = &c.limits;
    let _ = writeln!(
        s,
        "  memory {}, processes {}, cpu {}, wall time {}, open files {}",
        l.memory.map(fmt_size).unwrap_or_else(|| "unlimited".into()),
        l.processes.map(|p| p.to_string()).unwrap_or_else(|| "unlimited".into()),
        l.cpu.map(|p| format!("{p}")).unwrap_or_else(|| "unlimited".into()),
        l.wall_time.map(fmt_duration).unwrap_or_else(|| "unlimited".into()),
        l.open_files.map(|p| p.to_string()).unwrap_or_else(|| "inherited".into())
    );
    let _ = writeln!(s, "\nEnvironment:");
    if c.env.keep.is_empty() {
        let _ = writeln!(s, "  passed through, except: {}", c.env.drop.join(", "));
    } else {
        let _ = writeln!(s, "  only: {} (minus {})", c.env.keep.join(", "), c.env.drop.join(", "));
    }
    for (k, v) in &c.env.set {
        let _ = writeln!(s, "  set {k}={v}");
    }
    if !c.tools.is_empty() {
        let _ = writeln!(
            s,
            "\nTool profiles (used by the tool gateway): {}",
            c.tools.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    if !c.tests.is_empty() {
        let _ = writeln!(s, "\n{} embedded examples; run `cordon policy test` to check them.", c.tests.len());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Context;

    fn agent() -> CompiledPolicy {
        let cx = Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
        crate::load_and_compile("builtin:agent", &cx).expect("builtin:agent compiles").1
    }

    #[test]
    fn the_view_names_each_tree_once_with_its_access() {
        let text = explain(&agent());
        let line = text.lines().find(|l| l.contains("the session sees only:")).expect(&text);
        assert!(line.contains("@system read-only (/usr, /bin … 9 paths)"), "{line}");
        assert!(line.contains("@workspace read-write (~/ws)"), "{line}");
        assert!(line.contains("~/.gitconfig read-only"), "{line}");
        assert!(
            line.contains(
                "@proc read-only (/sys/devices/system/cpu, /sys/fs/cgroup, /sys/kernel/mm/transparent_hugepage)"
            ),
            "{line}"
        );
        assert!(line.contains("its own /tmp, /dev/shm, /run and /proc"), "{line}");
        assert!(!line.contains("@tmp"), "/tmp is the session's own, not a host tree: {line}");
        assert!(text.contains("Nothing else exists inside"), "{text}");
    }

    #[test]
    fn the_reviewed_files_are_listed_with_why() {
        let text = explain(&agent());
        let at = text.find("every change is listed at the end of the session").expect(&text);
        let rest = &text[at..];
        assert!(rest.contains("@host-exec-manual (workspace files that run when a human runs something"), "{rest}");
        assert!(rest.contains("**/Makefile") && rest.contains(".github/workflows/**"), "{rest}");
    }

    #[test]
    fn without_a_mount_namespace_the_host_tree_is_said_to_be_visible() {
        let mut c = agent();
        c.namespaces.mount = false;
        let text = explain(&c);
        assert!(!text.contains("the session sees only:"), "{text}");
        assert!(text.contains("the host's whole tree is visible"), "{text}");
    }
}
