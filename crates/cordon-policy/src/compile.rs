//! Merging the layers of a loaded policy into one `CompiledPolicy` for a given context.
//! Lists are appended (base first), single values are overridden by the later file.

use crate::compiled::*;
use crate::error::Source;
use crate::load::Loaded;
use crate::model::{RawFs, RawTest};
use crate::netspec::{self, NetAllow};
use crate::paths::{self, Context};
use crate::syscalls;
use crate::units;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Compiles a loaded policy. Values were checked at load, so this does not fail. Linear in the size of
/// the policy: merging looks entries up in sets built once per layer, never by scanning the lists.
pub fn compile(loaded: &Loaded, cx: &Context) -> CompiledPolicy {
    let top = loaded.layers.last();
    let mut c = CompiledPolicy {
        name: top.and_then(|l| l.raw.name.as_ref().map(|n| n.get_ref().clone())).unwrap_or_else(|| {
            top.map(|l| Path::new(&l.name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
                .unwrap_or_default()
        }),
        description: top.and_then(|l| l.raw.description.as_ref().map(|d| d.get_ref().clone())).unwrap_or_default(),
        sources: loaded.layers.iter().map(|l| l.name.clone()).collect(),
        workspace: cx.workspace.clone(),
        home: cx.home.clone(),
        fs: FsPolicy { tmp_size: 1 << 30, watch_writes: true, ..Default::default() },
        net: NetPolicy { egress: Egress::None, allow: vec![], listen: vec![], publish: vec![], udp: false },
        syscalls: syscalls::baseline(),
        kill_on_deny: false,
        limits: Limits::default(),
        env: EnvPolicy::default(),
        namespaces: Namespaces { pid: true, mount: true, ipc: true, uts: true, net: true },
        monitor_rules: vec![],
        tools: vec![],
        tests: vec![],
    };
    let mut ns_net: Option<bool> = None;
    for layer in &loaded.layers {
        let r = &layer.raw;
        let origin = layer.name.as_str();
        add_fs(&mut c.fs, &r.fs, cx, origin);
        if let Some(e) = &r.net.egress {
            c.net.egress = match e.get_ref().as_str() {
                "proxy" => Egress::Proxy,
                "open" => Egress::Open,
                _ => Egress::None,
            };
        }
        c.net.allow.extend(r.net.allow.iter().filter_map(|a| netspec::parse_allow_item(a.get_ref()).ok()).flatten());
        c.net.listen.extend(r.net.listen.iter().map(|p| *p.get_ref() as u16));
        for p in r.net.publish.iter().filter_map(|p| netspec::parse_publish(p.get_ref()).ok()) {
            if !c.net.publish.contains(&p) {
                c.net.publish.push(p);
            }
        }
        if let Some(u) = &r.net.udp {
            c.net.udp = *u.get_ref();
        }
        let lifted: HashSet<&str> = r.syscalls.allow.iter().map(|a| a.get_ref().as_str()).collect();
        c.syscalls.retain(|x| !lifted.contains(x.name.as_str()));
        for d in &r.syscalls.deny {
            c.syscalls.push(syscalls::user_rule(d.get_ref(), origin, false));
        }
        if let Some(a) = &r.syscalls.action {
            c.kill_on_deny = a.get_ref() == "kill";
        }
        let l = &r.limits;
        if let Some(m) = &l.memory {
            c.limits.memory = units::parse_size(m.get_ref()).ok();
        }
        if let Some(p) = &l.processes {
            c.limits.processes = Some(*p.get_ref() as u64);
        }
        if let Some(x) = &l.cpu {
            c.limits.cpu = Some(*x.get_ref());
        }
        if let Some(w) = &l.wall_time {
            c.limits.wall_time = units::parse_duration(w.get_ref()).ok();
        }
        if let Some(n) = &l.open_files {
            c.limits.open_files = Some(*n.get_ref() as u64);
        }
        push_unique(&mut c.env.keep, r.env.keep.iter().map(|x| x.get_ref().clone()));
        push_unique(&mut c.env.drop, r.env.drop.iter().map(|x| x.get_ref().clone()));
        // A later file's value replaces the earlier one and moves to the end.
        c.env.set.retain(|(x, _)| !r.env.set.contains_key(x));
        c.env.set.extend(r.env.set.iter().map(|(k, v)| (k.clone(), v.get_ref().clone())));
        let n = &r.namespaces;
        for (slot, v) in [
            (&mut c.namespaces.pid, &n.pid),
            (&mut c.namespaces.mount, &n.mount),
            (&mut c.namespaces.ipc, &n.ipc),
            (&mut c.namespaces.uts, &n.uts),
        ] {
            if let Some(v) = v {
                *slot = *v.get_ref();
            }
        }
        if let Some(v) = &n.net {
            ns_net = Some(*v.get_ref());
        }
        push_unique(&mut c.monitor_rules, r.monitor.rules.iter().map(|x| x.get_ref().clone()));
        // A later file's tool replaces the earlier one and moves to the end.
        c.tools.retain(|(n, _)| !r.tools.contains_key(n));
        for (name, t) in &r.tools {
            let t = t.get_ref();
            let f = t.fs.clone().unwrap_or_default();
            let ex =
                |l: &[toml::Spanned<String>]| l.iter().flat_map(|e| paths::expand(e.get_ref(), cx)).collect::<Vec<_>>();
            let tp = ToolPolicy {
                description: t.description.as_ref().map(|d| d.get_ref().clone()),
                command: t.command.iter().map(|x| x.get_ref().clone()).collect(),
                extra_read: ex(&f.read),
                extra_write: ex(&f.write),
                extra_exec: ex(&f.exec),
                net_allow: t
                    .net
                    .as_ref()
                    .map(|n| {
                        n.allow.iter().filter_map(|a| netspec::parse_allow_item(a.get_ref()).ok()).flatten().collect()
                    })
                    .unwrap_or_default(),
            };
            c.tools.push((name.clone(), tp));
        }
        let src = Source::new(&layer.name, &layer.text);
        for t in &r.tests {
            if let Some(e) = example(t.get_ref(), cx) {
                let (line, _) = src.line_col(t.span().start);
                c.tests.push(Example { at: format!("{}:{line}", layer.name), ..e });
            }
        }
    }
    // No network namespace is needed only when the policy opens the network.
    c.namespaces.net = ns_net.unwrap_or(c.net.egress != Egress::Open);
    sanitized_are_readable(&mut c.fs);
    c
}

/// A sanitized file is read (as its copy), so it is neither denied nor left without a read rule.
fn sanitized_are_readable(fs: &mut FsPolicy) {
    let paths: HashSet<PathBuf> = fs.sanitize.iter().map(|s| s.path.clone()).collect();
    fs.deny.retain(|d| !paths.contains(&d.path));
    for s in &fs.sanitize {
        match fs.rules.iter_mut().find(|r| r.path == s.path) {
            Some(r) => r.access.read = true,
            None => fs.rules.push(PathRule {
                path: s.path.clone(),
                access: Access { read: true, ..Default::default() },
                entry: s.entry.clone(),
                origin: format!("{} (fs.sanitize)", s.origin),
            }),
        }
    }
}

fn push_unique(v: &mut Vec<String>, items: impl Iterator<Item = String>) {
    let mut seen: HashSet<String> = v.iter().cloned().collect();
    for i in items {
        if seen.insert(i.clone()) {
            v.push(i);
        }
    }
}

fn add_fs(fs: &mut FsPolicy, r: &RawFs, cx: &Context, origin: &str) {
    let mut rule_at: HashMap<OsString, usize> =
        fs.rules.iter().enumerate().map(|(i, r)| (r.path.as_os_str().to_owned(), i)).collect();
    let mut grant = |list: &[toml::Spanned<String>], f: fn(&mut Access)| {
        for e in list {
            for p in paths::expand(e.get_ref(), cx) {
                match rule_at.get(p.as_os_str()) {
                    Some(&i) => f(&mut fs.rules[i].access),
                    None => {
                        let mut a = Access::default();
                        f(&mut a);
                        rule_at.insert(p.as_os_str().to_owned(), fs.rules.len());
                        fs.rules.push(PathRule {
                            path: p,
                            access: a,
                            entry: e.get_ref().clone(),
                            origin: origin.to_string(),
                        });
                    }
                }
            }
        }
    };
    grant(&r.read, |a| a.read = true);
    grant(&r.write, |a| {
        a.write = true;
        a.read = true
    });
    grant(&r.exec, |a| a.exec = true);
    let mut denied: HashSet<OsString> = fs.deny.iter().map(|m| m.path.as_os_str().to_owned()).collect();
    for e in &r.deny {
        for p in paths::expand(e.get_ref(), cx) {
            if denied.insert(p.as_os_str().to_owned()) {
                fs.deny.push(Masked { path: p, entry: e.get_ref().clone(), origin: origin.to_string() });
            }
        }
    }
    let mut protected: HashSet<PathBuf> = fs.protect.iter().map(|m| m.path.clone()).collect();
    for e in &r.protect {
        for (rel, why) in crate::protect::expand(e.get_ref()) {
            let p = paths::normalize(&cx.workspace.join(rel));
            if protected.insert(p.clone()) {
                fs.protect.push(Protected { path: p, entry: rel.to_string(), origin: origin.to_string(), why });
            }
        }
    }
    for u in &r.unprotect {
        fs.protect.retain(|m| !crate::protect::unprotects(u.get_ref(), &m.entry));
    }
    push_unique(&mut fs.hide, r.hide.iter().map(|e| e.get_ref().clone()));
    let mut reviewed: HashSet<String> = fs.review.iter().map(|x| x.pattern.clone()).collect();
    for e in &r.review {
        for x in crate::review::expand(e.get_ref(), origin) {
            if reviewed.insert(x.pattern.clone()) {
                fs.review.push(x);
            }
        }
    }
    for e in &r.sanitize {
        let Some(format) = crate::sanitize::format_of(e.get_ref()) else { continue };
        for p in paths::expand(e.get_ref(), cx) {
            if !fs.sanitize.iter().any(|m| m.path == p) {
                let (entry, origin) = (e.get_ref().clone(), origin.to_string());
                fs.sanitize.push(Sanitize { path: p, format, entry, origin, staged: None });
            }
        }
    }
    if let Some(w) = &r.watch_writes {
        fs.watch_writes = *w.get_ref();
    }
    if let Some(m) = r.review_mode.as_ref().and_then(|m| crate::review::ReviewMode::parse(m.get_ref())) {
        fs.review_mode = m;
    }
    for e in &r.create {
        for p in paths::expand(e.get_ref(), cx) {
            if !fs.create.iter().any(|m| m.path == p) {
                fs.create.push(Masked { path: p, entry: e.get_ref().clone(), origin: origin.to_string() });
            }
        }
    }
    if let Some(t) = &r.tmp_size {
        if let Ok(n) = units::parse_size(t.get_ref()) {
            fs.tmp_size = n;
        }
    }
}

fn example(t: &RawTest, cx: &Context) -> Option<Example> {
    let path = |s: &str| -> PathBuf {
        if s.starts_with(['/', '~', '$']) {
            paths::expand(s, cx).into_iter().next().unwrap_or_default()
        } else {
            paths::normalize(&cx.workspace.join(s))
        }
    };
    let (probe, text) = if let Some(x) = &t.read {
        (Probe::Read(path(x.get_ref())), format!("read {}", x.get_ref()))
    } else if let Some(x) = &t.write {
        (Probe::Write(path(x.get_ref())), format!("write {}", x.get_ref()))
    } else if let Some(x) = &t.exec {
        (Probe::Exec(path(x.get_ref())), format!("exec {}", x.get_ref()))
    } else if let Some(x) = &t.connect {
        (Probe::Connect(x.get_ref().clone()), format!("connect {}", x.get_ref()))
    } else if let Some(x) = &t.env {
        (Probe::Env(x.get_ref().clone()), format!("env {}", x.get_ref()))
    } else if let Some(x) = &t.syscall {
        (Probe::Syscall(x.get_ref().clone()), format!("syscall {}", x.get_ref()))
    } else {
        return None;
    };
    let expect_allow = t.expect.as_ref().map(|e| e.get_ref() == "allow").unwrap_or(false);
    Some(Example {
        name: t.name.as_ref().map(|n| n.get_ref().clone()).unwrap_or(text),
        probe,
        expect_allow,
        at: String::new(),
    })
}

/// Does the allowlist entry admit `host:port`?
pub fn net_allows<'a>(allow: &'a [NetAllow], host: &str, port: u16) -> Option<&'a NetAllow> {
    use crate::netspec::HostSpec;
    let host = host.to_ascii_lowercase();
    allow.iter().find(|a| {
        if a.port.is_some_and(|p| p != port) {
            return false;
        }
        match &a.host {
            HostSpec::Domain { name } => *name == host,
            HostSpec::Wildcard { suffix } => host.ends_with(&format!(".{suffix}")),
            HostSpec::Ip { addr } => host.parse::<std::net::IpAddr>().ok() == Some(*addr),
            HostSpec::Cidr { addr, prefix } => match (host.parse::<std::net::IpAddr>(), addr) {
                (Ok(std::net::IpAddr::V4(h)), std::net::IpAddr::V4(a)) => {
                    let m = if *prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
                    u32::from(h) & m == u32::from(*a) & m
                }
                (Ok(std::net::IpAddr::V6(h)), std::net::IpAddr::V6(a)) => {
                    let m = if *prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
                    u128::from(h) & m == u128::from(*a) & m
                }
                _ => false,
            },
        }
    })
}
