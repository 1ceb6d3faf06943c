//! `cordon doctor`: what this host can enforce, for this user and for the other kind of user
//! (root / unprivileged), and what that means for the default profile.

use anyhow::Result;
use clap::Args;
use cordon_session::host::{self, Host};
use serde_json::{json, Value};

#[derive(Args)]
#[command(about = "Show what this host can enforce and what the default profile gets here")]
pub struct DoctorArgs {
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// The other user's view: as root, a child drops to `nobody` and detects; as a user, what root gets is
/// described from the host's mounts (root can write cgroups and load BPF).
fn other_view(host: &Host) -> Value {
    if host.is_root() {
        match probe_as_nobody() {
            Some(v) => v,
            None => json!({"error": "could not probe as nobody"}),
        }
    } else {
        let mut v = host.as_root_inferred().view();
        v["note"] = json!("inferred: root can write the cgroup hierarchies and load the eBPF sensor");
        v
    }
}

fn probe_as_nobody() -> Option<Value> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe)
        .args(["doctor", "--json"])
        .env("CORDON_DOCTOR_INNER", "1")
        .output()
        .ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(v.get("this_user").cloned().unwrap_or(v))
}

pub fn run(a: DoctorArgs) -> Result<i32> {
    let h = Host::detect();
    let me = h.view();
    let inner = std::env::var_os("CORDON_DOCTOR_INNER").is_some();
    let other = if inner { Value::Null } else { other_view(&h) };
    let doc = json!({
        "kernel": h.kernel(), "arch": h.arch(),
        "this_user": me,
        "other_user": other,
        "sensor": host::sensor_view(),
        "lsm": std::fs::read_to_string("/sys/kernel/security/lsm").ok().map(|s| s.trim().to_string()),
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(0);
    }
    println!("cordon doctor — Linux {} ({})\n", h.kernel(), h.arch());
    print_view(&format!("As this user (uid {})", h.uid()), &me);
    if !other.is_null() {
        println!();
        print_view(if h.is_root() { "As an unprivileged user (nobody)" } else { "As root" }, &other);
    }
    let sv = &doc["sensor"];
    println!();
    if sv["usable"].as_bool() == Some(true) {
        println!("eBPF sensor (cordon run --monitor, cordon monitor): usable — all programs pass the verifier ({:.0} ms to load)", sv["loads_ms"].as_f64().unwrap_or(0.0));
        println!("  programs      tp_btf sys_enter/sys_exit, sched_process_exec/fork/exit; cgroup connect4/6, sendmsg4/6, sock_create");
        println!(
            "  sessions      filtered in the kernel by cgroup v2 id (hierarchy at {})",
            sv["cgroup_v2"].as_str().unwrap_or("?")
        );
    } else {
        println!("eBPF sensor: NOT usable here: {}", sv["why_not"].as_str().unwrap_or("unknown"));
    }
    match sv["bpf_lsm"].as_bool() {
        Some(true) => println!("  BPF-LSM       available: LSM programs load and attach (an optional tier; cordon's enforcement does not depend on it)"),
        Some(false) => println!("  BPF-LSM       not available: {} (this kernel does not run BPF-LSM programs; boot with lsm=...,bpf)", sv["bpf_lsm_error"].as_str().unwrap_or("refused")),
        None => {}
    }
    println!(
        "  tracefs {}, bpffs {} (the sensor needs neither and never mounts them)",
        if sv["tracefs_mounted"].as_bool() == Some(true) { "mounted" } else { "not mounted" },
        if sv["bpffs_mounted"].as_bool() == Some(true) { "mounted" } else { "not mounted" }
    );
    Ok(0)
}

fn print_view(title: &str, v: &Value) {
    println!("{title}:");
    let ll = &v["landlock"];
    if ll["available"].as_bool() == Some(true) {
        println!(
            "  landlock      ABI {}: {}",
            ll["abi"],
            ll["enforces"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        );
    } else {
        println!("  landlock      MISSING: no filesystem confinement");
    }
    let sc = &v["seccomp"];
    println!("  seccomp       filter {}, user notification {}", yes(&sc["filter"]), yes(&sc["user_notification"]));
    let ns = &v["namespaces"];
    if ns["available"].as_bool() == Some(true) {
        println!("  namespaces    yes (via {})", ns["via"].as_str().unwrap_or(""));
    } else {
        println!("  namespaces    MISSING: {}", ns["why"].as_str().unwrap_or(""));
    }
    let cg = &v["cgroups"];
    let v1: Vec<String> = cg["v1_writable"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["controller"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    println!(
        "  cgroups       v2 at {} (controllers: {}; writable here: {}), v1 writable: {}",
        cg["v2_mount"].as_str().unwrap_or("-"),
        cg["v2_controllers"]
            .as_array()
            .map(|a| if a.is_empty() {
                "none".to_string()
            } else {
                a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" ")
            })
            .unwrap_or_default(),
        if cg["v2_writable_base"].is_null() { "no" } else { "yes" },
        if v1.is_empty() { "none".into() } else { v1.join(", ") }
    );
    let d = &v["default_profile"];
    println!("  default profile (builtin:agent):");
    for g in d["guarantees"].as_array().into_iter().flatten() {
        if g["enforced"].as_bool() == Some(true) {
            println!(
                "    ok    [{}] {} — {}",
                g["layer"].as_str().unwrap_or(""),
                g["what"].as_str().unwrap_or(""),
                g["how"].as_str().unwrap_or("")
            );
        } else {
            println!(
                "    LOST  [{}] {} — needs {}; instead: {}",
                g["layer"].as_str().unwrap_or(""),
                g["what"].as_str().unwrap_or(""),
                g["missing"].as_str().unwrap_or(""),
                g["instead"].as_str().unwrap_or("")
            );
        }
    }
    if d["runs_without_degrading"].as_bool() == Some(true) {
        println!("  => `cordon run` enforces the default profile in full here.");
    } else {
        println!("  => `cordon run` refuses the default profile here unless you pass --allow-degraded ({} guarantee(s) lost).", d["degraded"]);
    }
}

fn yes(v: &Value) -> &'static str {
    if v.as_bool() == Some(true) {
        "yes"
    } else {
        "NO"
    }
}
