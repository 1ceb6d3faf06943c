//! The deployment files under deploy/ (docs/DEPLOY.md): each parses, each names only flags the real
//! `cordon` accepts (its own parser, given the file's command line and `--help`), and the systemd
//! units have no key systemd does not know (`systemd-analyze verify`, where the host has it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn files(sub: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(deploy().join(sub))
        .unwrap_or_else(|e| panic!("deploy/{sub}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no *.{ext} under deploy/{sub}");
    v
}

/// `cordon ARGS --help` exits 0: clap refuses an unknown flag or subcommand before it prints help.
fn cordon_accepts(args: &[String], file: &Path) {
    let o = Command::new(CORDON).args(args).arg("--help").output().expect("run cordon");
    assert!(
        o.status.success(),
        "{}: cordon does not accept `{}`: {}",
        file.display(),
        args.join(" "),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A unit file's sections and their keys, in order; panics naming the line on anything else.
fn parse_unit(p: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(p).expect("read the unit");
    let mut section = String::new();
    let mut keys = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(["Unit", "Service", "Install"].contains(&s), "{}:{}: section [{s}]", p.display(), i + 1);
            section = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{}:{}: not KEY=VALUE: {line}", p.display(), i + 1));
        assert!(!section.is_empty(), "{}:{}: a key before any section", p.display(), i + 1);
        keys.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
    }
    keys
}

fn value<'a>(keys: &'a [(String, String, String)], section: &str, key: &str) -> Option<&'a str> {
    keys.iter().find(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str())
}

#[test]
fn deploy_systemd_units_parse_and_run_commands_cordon_accepts() {
    for p in files("systemd", "service") {
        let keys = parse_unit(&p);
        let exec = value(&keys, "Service", "ExecStart").unwrap_or_else(|| panic!("{}: no ExecStart", p.display()));
        assert!(!exec.contains(['"', '\'', '\\']), "{}: ExecStart is split on spaces here; no quoting", p.display());
        let argv: Vec<String> = exec.split_whitespace().map(String::from).collect();
        assert_eq!(argv[0], "/usr/local/bin/cordon", "{}", p.display());
        cordon_accepts(&argv[1..], &p);
        assert!(value(&keys, "Install", "WantedBy").is_some(), "{}: not enabled by any target", p.display());
        assert!(
            value(&keys, "Service", "KillSignal") == Some("SIGTERM"),
            "{}: cordon stops cleanly on SIGTERM",
            p.display()
        );
    }
}

#[test]
fn deploy_systemd_units_have_no_key_systemd_does_not_know() {
    let Ok(o) = Command::new("systemd-analyze").arg("--version").output() else {
        common::record_skip(
            "deploy_systemd_units_have_no_key_systemd_does_not_know",
            "no systemd-analyze on this host",
        );
        return;
    };
    assert!(o.status.success());
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(format!("cordon-deploy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _gone = Gone(dir.clone());
    for p in files("systemd", "service") {
        // The same unit with the binary this test built (verify checks that it exists).
        let text = std::fs::read_to_string(&p).expect("read").replace("/usr/local/bin/cordon", CORDON);
        let copy = dir.join(p.file_name().expect("name"));
        std::fs::write(&copy, text).expect("write the copy");
        let o = Command::new("systemd-analyze").arg("verify").arg(&copy).output().expect("systemd-analyze verify");
        let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        // Only what it says of this unit: verify also loads the host's units and may warn of those.
        let name = copy.file_name().and_then(|n| n.to_str()).expect("name");
        let ours: Vec<&str> = said.lines().filter(|l| l.contains(name)).collect();
        for bad in ["Unknown key", "Unknown section", "Failed to parse", "Invalid", "is not executable"] {
            assert!(!ours.iter().any(|l| l.contains(bad)), "{}: systemd-analyze verify says:\n{said}", p.display());
        }
    }
}

#[test]
fn deploy_kubernetes_manifests_parse_and_hang_together() {
    for p in files("kubernetes", "json") {
        let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(
            (m["apiVersion"].as_str(), m["kind"].as_str()),
            (Some("apps/v1"), Some("DaemonSet")),
            "{}",
            p.display()
        );
        let spec = &m["spec"];
        assert_eq!(
            spec["selector"]["matchLabels"],
            spec["template"]["metadata"]["labels"],
            "{}: the selector must match the pods",
            p.display()
        );
        let pod = &spec["template"]["spec"];
        let volumes: Vec<&str> =
            pod["volumes"].as_array().expect("volumes").iter().filter_map(|v| v["name"].as_str()).collect();
        for c in pod["containers"].as_array().expect("containers") {
            let argv: Vec<String> = c["command"]
                .as_array()
                .expect("command")
                .iter()
                .map(|a| a.as_str().expect("a string").to_string())
                .collect();
            assert_eq!(argv[0], "/usr/local/bin/cordon", "{}", p.display());
            cordon_accepts(&argv[1..], &p);
            for vm in c["volumeMounts"].as_array().expect("volumeMounts") {
                let name = vm["name"].as_str().expect("name");
                assert!(volumes.contains(&name), "{}: volumeMount `{name}` has no volume", p.display());
            }
            // The audit log is on a host volume: a pod's own filesystem goes with each restart.
            let audit = argv.iter().position(|a| a == "--audit").map(|i| &argv[i + 1]).expect("--audit");
            let on_volume = |path: &str| {
                c["volumeMounts"]
                    .as_array()
                    .expect("mounts")
                    .iter()
                    .any(|vm| vm["mountPath"].as_str().is_some_and(|m| Path::new(path).starts_with(m)))
            };
            assert!(on_volume(audit), "{}: the audit log {audit} is not on a host volume", p.display());
            // The socket the command listens on is on a volume the node's users can reach.
            let sock = argv.iter().position(|a| a == "--socket").map(|i| &argv[i + 1]).expect("--socket");
            let dir = Path::new(sock).parent().expect("its directory");
            assert!(
                c["volumeMounts"]
                    .as_array()
                    .expect("mounts")
                    .iter()
                    .any(|vm| vm["mountPath"] == dir.to_str().expect("utf-8")),
                "{}: {sock} is not on a host volume",
                p.display()
            );
        }
    }
}
