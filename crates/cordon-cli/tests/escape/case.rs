//! A case of tests/escape/cases.toml, the layers a case may name, and what each layer lets the
//! harness check (the errno the attack must see, the sensor's `deny` layer, cordon's report).

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cases {
    pub case: Vec<Case>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub id: String,
    pub cat: u8,
    pub what: String,
    pub run: String,
    /// The layer that must decide the case (one of [`LAYERS`]).
    pub layer: Option<String>,
    /// The errno the attack must see inside (its symbolic name or its strerror text must be in the
    /// attack's own output).
    pub errno: Option<String>,
    /// The effect the attack must see when there is no errno (a variable absent, a limit hit),
    /// said in words; what is checked is the exit, the host, `report`.
    pub effect: Option<String>,
    pub setup: Option<String>,
    pub check: Option<String>,
    pub cleanup: Option<String>,
    /// Text cordon's exit summary (its stderr, never the attack's output) must contain; for a
    /// seccomp case also a `seccomp` denial in `--report`'s JSON whose `what` contains it.
    pub report: Option<String>,
    /// As root: the `builtin:agent` rule that must raise an alert.
    pub alert: Option<String>,
    /// As root: false when the sensor cannot see this refusal although the layer is one it
    /// attributes; the text says why.
    pub unsensed: Option<String>,
    pub net: Option<String>,
    pub users: Option<Vec<String>>,
    /// Policy lines added to `extends = ["builtin:agent"]`; $ROOT, $HOME and $WS are replaced.
    pub policy: Option<String>,
    pub tty: Option<bool>,
    pub known_limit: Option<String>,
    /// The attack's effect is on the host: it worked if `check` fails.
    pub host_effect: Option<bool>,
    /// The case runs in a UTS namespace the harness makes for it (named `cordon-uts-host`):
    /// setup, control, `cordon` and `check` run there, so an attack on the host's name renames
    /// that namespace, never the machine's.
    pub own_uts: Option<bool>,
}

pub struct Layer {
    pub name: &'static str,
    pub what: &'static str,
    /// The sensor's name for a refusal by this layer (its `deny` events), where it attributes one.
    pub sensor: Option<&'static str>,
}

/// The layers a case may name. A case names the one that decides it: the other layers may stand
/// behind it, but the attack must meet this one first.
pub const LAYERS: &[Layer] = &[
    Layer {
        name: "seccomp",
        what: "the seccomp filter (EPERM; the supervisor records the denial)",
        sensor: Some("seccomp"),
    },
    Layer { name: "landlock", what: "Landlock filesystem rights (EACCES)", sensor: Some("landlock") },
    Layer {
        name: "cgroup-bpf",
        what: "the sensor's cgroup-bpf network rules (root: EPERM)",
        sensor: Some("cgroup-bpf"),
    },
    Layer { name: "root", what: "the root built from the policy: the path is not there (ENOENT)", sensor: None },
    Layer {
        name: "sealed",
        what: "the built root is sealed read-only: nothing new outside the trees (EROFS)",
        sensor: None,
    },
    Layer { name: "readonly", what: "a read-only tree bound read-only, every mount beneath (EROFS)", sensor: None },
    Layer {
        name: "mountpoint",
        what: "a protected path is a mount point: no rename over or away (EBUSY)",
        sensor: None,
    },
    Layer {
        name: "placeholder",
        what:
            "an absent protected path is a socket inode with no write bit bound read-only, a mount point (EACCES, ENOTDIR, EEXIST, EBUSY)",
        sensor: None,
    },
    Layer {
        name: "sanitize",
        what: "a settings file is read as a copy without its secrets (fs.sanitize): the secret is not there",
        sensor: None,
    },
    Layer {
        name: "mask",
        what: "a mode-000 mask over a secret inside a readable tree (EACCES)",
        sensor: Some("mounts"),
    },
    Layer { name: "netns", what: "the empty network namespace (own loopback only, no route)", sensor: None },
    Layer { name: "proxy", what: "the egress proxy: the allowlist only, never an internal address", sensor: None },
    Layer { name: "pidns", what: "the pid namespace and private /proc: host processes are not there", sensor: None },
    Layer {
        name: "ipcns",
        what: "the IPC namespace: the host's System V objects and POSIX queues are not there (ENOENT)",
        sensor: None,
    },
    Layer {
        name: "nodump",
        what: "cordon's processes in the session are not dumpable (EACCES on /proc)",
        sensor: None,
    },
    Layer { name: "tmpfs", what: "the session's private, size-bounded /tmp", sensor: None },
    Layer {
        name: "memfd",
        what: "memfds are made by the supervisor with MFD_NOEXEC_SEAL (EACCES on exec)",
        sensor: Some("dac"),
    },
    Layer { name: "caps", what: "no capabilities (EPERM from the kernel's capability checks)", sensor: None },
    Layer { name: "nnp", what: "no_new_privs", sensor: None },
    Layer { name: "env", what: "the environment filter", sensor: None },
    Layer { name: "rlimit", what: "resource limits (RLIMIT_NOFILE, RLIMIT_CORE)", sensor: None },
    Layer { name: "cgroup", what: "the session's cgroup limits (pids, memory)", sensor: None },
    Layer { name: "timer", what: "the supervisor's wall-time limit", sensor: None },
];

pub fn layer(name: &str) -> Option<&'static Layer> {
    LAYERS.iter().find(|l| l.name == name)
}

/// The errnos a case may name: the symbolic name and the text `strerror` gives (which is what
/// tools print); ENOENT also as dash says it.
pub fn errno_texts(name: &str) -> Option<Vec<String>> {
    let n = match name {
        "EPERM" => libc::EPERM,
        "ENOENT" => libc::ENOENT,
        "ESRCH" => libc::ESRCH,
        "EACCES" => libc::EACCES,
        "EXDEV" => libc::EXDEV,
        "EROFS" => libc::EROFS,
        "EBUSY" => libc::EBUSY,
        "EISDIR" => libc::EISDIR,
        "ENXIO" => libc::ENXIO,
        "ENOTDIR" => libc::ENOTDIR,
        "EEXIST" => libc::EEXIST,
        "ENOSPC" => libc::ENOSPC,
        "EMFILE" => libc::EMFILE,
        "ENETUNREACH" => libc::ENETUNREACH,
        "ECONNREFUSED" => libc::ECONNREFUSED,
        "EINVAL" => libc::EINVAL,
        "ENOSYS" => libc::ENOSYS,
        "EAFNOSUPPORT" => libc::EAFNOSUPPORT,
        _ => return None,
    };
    let text = std::io::Error::from_raw_os_error(n).to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut v = vec![name.to_string(), text];
    if n == libc::ENOENT {
        // dash: "cannot create X: Directory nonexistent", "cannot open X: No such file".
        v.extend(["Directory nonexistent".into(), "No such file".into()]);
    }
    Some(v)
}

/// What is wrong with a case, if anything: every case names its layer and an errno or an effect.
pub fn problems(c: &Case) -> Vec<String> {
    let mut p = vec![];
    if c.known_limit.is_some() {
        return p;
    }
    match c.layer.as_deref() {
        None => p.push(format!("{}: no `layer` (one of {})", c.id, names())),
        Some(l) if layer(l).is_none() => p.push(format!("{}: unknown layer `{l}` (one of {})", c.id, names())),
        Some("seccomp") if c.report.is_none() => {
            p.push(format!("{}: a seccomp case names the `report` text its denial must have", c.id))
        }
        _ => {}
    }
    match (&c.errno, &c.effect) {
        (None, None) => p.push(format!("{}: neither `errno` nor `effect`", c.id)),
        (Some(e), _) if errno_texts(e).is_none() => p.push(format!("{}: unknown errno `{e}`", c.id)),
        _ => {}
    }
    if c.net.is_some() && c.host_effect.is_some() {
        p.push(format!("{}: `net` and `host_effect` both set", c.id));
    }
    p
}

fn names() -> String {
    LAYERS.iter().map(|l| l.name).collect::<Vec<_>>().join(", ")
}
