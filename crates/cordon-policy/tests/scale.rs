//! Compiling and explaining a policy is linear in its size: a policy of 52,000 `[tools.*]` tables, or
//! of 50,000 entries in one list (each fits in the 1 MiB file limit), compiles and explains in well
//! under the bound below. The quadratic code this guards against took 8.5 s (tools) and 11 s
//! (`fs.read`) in a release build, and far longer in a debug one.

use std::sync::mpsc;
use std::time::Duration;

/// The bound is on the loading thread's CPU time, not the wall clock, so that a loaded machine
/// (other builds on both cores) cannot fail the test: the linear code takes a few CPU seconds at
/// most in a debug build; the quadratic code took minutes. The wall clock only guards a hang.
const BOUND: Duration = Duration::from_secs(25);
const HANG: Duration = Duration::from_secs(300);

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).map(Duration::from).unwrap_or_default()
}

fn many_tools(n: usize) -> String {
    let mut s = String::from("version = 1\nname = \"many-tools\"\nextends = [\"builtin:agent\"]\n");
    for i in 0..n {
        s.push_str(&format!("[tools.t{i:05}]\n"));
    }
    s
}

/// Loads, compiles and explains on a thread; fails if that has not finished within BOUND. Returns
/// the number of tools and the time taken.
fn timed(text: String) -> (usize, Duration) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = thread_cpu();
        let cx = cordon_policy::Context { home: "/home/u".into(), workspace: "/home/u/ws".into(), tmp: "/tmp".into() };
        let l = cordon_policy::load_text("many.toml", &text).expect("loads");
        let c = cordon_policy::compile(&l, &cx);
        let _ = cordon_policy::explain::explain(&c);
        let _ = tx.send((c.tools.len(), thread_cpu() - t));
    });
    let (n, took) =
        rx.recv_timeout(HANG).unwrap_or_else(|_| panic!("compiling and explaining did not finish within {HANG:?}"));
    assert!(took < BOUND, "compiling and explaining took {took:?} of CPU (bound {BOUND:?}): quadratic again?");
    (n, took)
}

#[test]
fn fifty_two_thousand_tools_compile_and_explain_in_linear_time() {
    let text = many_tools(52_000);
    assert!(text.len() < 1 << 20, "the test policy fits in the file limit ({} bytes)", text.len());
    let (n, took) = timed(text);
    assert_eq!(n, 52_000);
    eprintln!("52000 tools: loaded, compiled and explained in {took:?}");
}

#[test]
fn fifty_thousand_entries_in_one_list_compile_and_explain_in_linear_time() {
    let n = 50_000;
    let list = |f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<Vec<_>>().join(", ");
    let cases = [
        ("fs.read", format!("version = 1\n[fs]\nread = [{}]\n", list(&|i| format!("\"/o/p{i}\"")))),
        ("fs.deny", format!("version = 1\n[fs]\ndeny = [{}]\n", list(&|i| format!("\"/o/p{i}\"")))),
        ("fs.hide", format!("version = 1\n[fs]\nhide = [{}]\n", list(&|i| format!("\"h{i}\"")))),
        ("env.keep", format!("version = 1\n[env]\nkeep = [{}]\n", list(&|i| format!("\"V{i}\"")))),
        (
            "env.set",
            format!("version = 1\n[env.set]\n{}\n", (0..n).map(|i| format!("V{i} = \"x\"\n")).collect::<String>()),
        ),
    ];
    for (what, text) in cases {
        assert!(text.len() < 1 << 20, "{what}: the test policy fits in the file limit ({} bytes)", text.len());
        let (_, took) = timed(text);
        eprintln!("{n} entries in {what}: loaded, compiled and explained in {took:?}");
    }
}

/// Loads on a thread; fails if that has not finished within BOUND. Returns the number of errors.
fn errors_within_bound(text: String) -> (usize, Duration) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let t = thread_cpu();
        let n = cordon_policy::load_text("bad.toml", &text).err().map(|e| e.diagnostics().len()).unwrap_or(0);
        let _ = tx.send((n, thread_cpu() - t));
    });
    let (n, took) =
        rx.recv_timeout(HANG).unwrap_or_else(|_| panic!("reporting the errors did not finish within {HANG:?}"));
    assert!(took < BOUND, "reporting the errors took {took:?} of CPU (bound {BOUND:?}): quadratic again?");
    (n, took)
}

#[test]
fn a_file_full_of_errors_gets_every_one_in_linear_time() {
    let n = 100_000;
    // Type errors, all on one line; then values of the right type that fail their checks.
    let cases = [
        ("type errors on one line", format!("version = 1\n[fs]\nread = [{}]\n", vec!["1"; n].join(","))),
        ("invalid paths, one a line", format!("version = 1\n[fs]\nread = [\n{}]\n", vec!["\"a\",\n"; n].concat())),
    ];
    for (what, text) in cases {
        assert!(text.len() < 1 << 20, "{what}: the test policy fits in the file limit ({} bytes)", text.len());
        let (errors, took) = errors_within_bound(text);
        assert_eq!(errors, n, "{what}: every error");
        eprintln!("{n} {what}: reported in {took:?}");
    }
}
