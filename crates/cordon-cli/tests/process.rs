//! End-to-end: the command line and the command's process, with the real `cordon` binary, as root and
//! as nobody. Non-UTF-8 environment, working directory, workspace and arguments reach the command
//! unchanged (issue 11, item 17); cordon's own flags end where the command begins (item 20); a command
//! that ignores SIGTERM is killed on a second signal or after --kill-after (item 26); a seccomp
//! refusal states each reason once (item 29).

mod common;
use common::*;

// ---- item 29: one reason per rule ----------------------------------------------------------------

#[test]
fn a_seccomp_refusal_states_each_reason_once() {
    if !need_root() {
        return;
    }
    let e = Env::new(Who::Root);
    let evf = e.root.join("events.jsonl");
    // socket(AF_PACKET) is refused by the rule for families above netlink; the socket call has
    // twenty rules, fourteen of which share that rule's reason.
    let script = "python3 -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)'; exit 0";
    let o = e.run_sh_with(&["--events", evf.to_str().expect("utf-8 path")], script, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let fam = "network: socket family outside unix, inet, inet6 and netlink";
    let line = err(&o).lines().find(|l| l.contains("[seccomp] socket")).map(str::to_string).unwrap_or_else(|| panic!("no sensor line for the refusal: {}", show(&o)));
    assert_eq!(line.matches(fam).count(), 1, "{line}");
    let events = std::fs::read_to_string(&evf).expect("events");
    let deny = events.lines().find(|l| l.contains("\"deny\"") && l.contains("\"socket\"")).unwrap_or_else(|| panic!("no deny event: {}", show(&o)));
    let v: serde_json::Value = serde_json::from_str(deny).expect("json");
    let reason = v["reason"].as_str().unwrap_or("");
    assert_eq!(reason.matches(fam).count(), 1, "{reason}");
    // Every distinct reason of the socket rules is still there, once each.
    for other in ["network: raw IP sockets", "network: netlink protocol other than route and sock_diag;", "(audit, uevent, ...)"] {
        assert_eq!(reason.matches(other).count(), 1, "{other}: {reason}");
    }
}
