//! DevboxError: each names the file, field, step or repository at fault, with a hint.

use cordon_policy::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum DevboxError {
    #[error("cannot read devbox file {path}: {err}")]
    Read { path: String, err: String },
    /// `devbox.toml` has one or more problems; each names its position.
    #[error("{}", render(.0))]
    Config(Vec<Diagnostic>),
    /// The code could not be resolved or cloned (`step`: what was being done).
    #[error("devbox {file}: {step}: {message}\n  hint: {hint}")]
    Code { file: String, step: String, message: String, hint: String },
    /// A setup command failed: the snapshot was not made.
    #[error(
        "devbox {file}: setup step {n} of {total} (`{cmd}`) failed: {why}; nothing was kept{}\n  hint: run the step by hand in a clone of the code at that commit under `cordon run`, or allow what it reached with setup_net",
        tail(.output)
    )]
    Setup { file: String, n: usize, total: usize, cmd: String, why: String, output: String },
    /// The daemon could not start or serve (its socket, its store).
    #[error("cordon daemon: {0}")]
    Daemon(String),
    /// The store could not be written.
    #[error("devbox store {path}: {what}: {err}\n  hint: --store DIR names another store (it must be a directory root can write)")]
    Store { path: String, what: String, err: std::io::Error },
}

fn render(d: &[Diagnostic]) -> String {
    d.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("\n")
}

/// The last lines of a step's output, indented, if it printed anything.
fn tail(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let from = lines.len().saturating_sub(15);
    let mut s = String::from("\n  its output (last lines):");
    for l in &lines[from..] {
        s.push_str("\n    ");
        s.push_str(l);
    }
    s
}
