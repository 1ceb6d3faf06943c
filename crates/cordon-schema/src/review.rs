//! Changes to workspace files that run outside the sandbox (`fs.review`, issue 19): what the end of
//! a session lists for the person to review before running anything, records (one `review` record
//! per change) and hands to the rules.

use serde::{Deserialize, Serialize};

/// What happened to a reviewed file between the start and the end of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Created,
    Modified,
    Deleted,
}

impl ChangeKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
        }
    }
}

/// One changed file. Its `review` record, its line in the summary and the report's entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    /// Workspace-relative, as bytes allow (lossy UTF-8).
    pub path: String,
    pub change: ChangeKind,
    /// The change in words: `+3/-1 lines`, `mode 0644 -> 0755`, `binary, 10 -> 12 bytes`, ...
    pub summary: String,
    /// Lines added and removed (0 and 0 for a change of mode only or of a binary file).
    pub added: u64,
    pub removed: u64,
    /// The first changed lines, `+ ` or `- ` and the line (control characters escaped, cut at 160
    /// characters); empty when the contents were not kept (larger than the keep limit).
    pub excerpt: Vec<String>,
    /// The `fs.review` pattern that matched, the entry that named it (`@host-exec-manual` or the
    /// pattern) and what runs the file.
    pub pattern: String,
    pub entry: String,
    pub runs: String,
    /// sha256 of the contents (a symlink's: of its target) before and after; absent when the file
    /// did not exist or could not be read.
    pub before_sha256: Option<String>,
    pub after_sha256: Option<String>,
    /// Permission bits (e.g. 0o755) before and after.
    pub before_mode: Option<u32>,
    pub after_mode: Option<u32>,
    /// Hold mode (`--review`, `fs.review_mode = "hold"`) only: whether the change was held as a
    /// patch (the file restored to its state at the start) or left as the session made it, and why.
    #[serde(default)]
    pub hold: Option<Hold>,
}

/// What hold mode did with one change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Hold {
    /// Restored on disk to its state at the start; the session's version is in the patch `patch`,
    /// whose sha256 is `patch_sha256` (check the file against the record with `sha256sum`).
    Held { patch: String, patch_sha256: String },
    /// Left as the session made it (on disk now), for the reason given.
    NotHeld { why: String },
}

/// The patch hold mode wrote: every held change, applicable from the workspace with `git apply` or
/// `patch -p1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HeldPatch {
    pub path: String,
    pub sha256: String,
    /// Changes it holds.
    pub files: u64,
    /// The command that applies it.
    pub apply: String,
}

/// The review of one session: the changes, and how much the walk saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Review {
    pub changes: Vec<Change>,
    /// Reviewed files found at the start.
    pub files: u64,
    /// Workspace entries the walk read, at the start and at the end.
    pub entries: u64,
    /// The walk stopped at its limit of entries: files beyond it were not compared.
    pub capped: bool,
    /// Time the walks took, at the start and the end.
    pub start_ms: u64,
    pub end_ms: u64,
    /// Hold mode: the patch written, when some change was held.
    #[serde(default)]
    pub held: Option<HeldPatch>,
}
