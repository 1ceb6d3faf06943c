//! Policy errors: every problem names the file, line, column and field, and gives a hint.

use std::fmt;

/// One problem found in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in (`builtin:NAME` for built-in profiles).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub col: usize,
    /// Dotted field name, e.g. `fs.read[2]` or `limits.memory`.
    pub field: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: error", self.file, self.line, self.col)?;
        if !self.field.is_empty() {
            write!(f, " in `{}`", self.field)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Why a policy could not be loaded or compiled.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not one cordon reads a policy or rule set from: not a regular file, too large,
    /// or not UTF-8 text.
    #[error("cannot read {path}: {problem}\n  hint: {}", problem.hint())]
    File { path: String, problem: FileProblem },
    /// The policy has one or more errors; each names its position.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

/// Why a file cannot be a policy or rule file (see [`crate::load::read_file`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    #[error("it is larger than {} MiB ({limit} bytes), the limit for policy and rule files", limit >> 20)]
    TooLarge { limit: u64 },
    #[error("it is a {kind}, not a regular file")]
    NotRegular { kind: &'static str },
    #[error("it is not UTF-8 text (invalid byte at line {line}, column {col})")]
    NotUtf8 { line: usize, col: usize },
}

impl FileProblem {
    pub fn hint(&self) -> &'static str {
        match self {
            FileProblem::TooLarge { .. } => "policies and rule sets are short TOML files; is this the right path?",
            FileProblem::NotRegular { .. } => "policies and rules are read from regular files; save it to a file and give that path",
            FileProblem::NotUtf8 { .. } => "save the file as UTF-8",
        }
    }
}

fn render(d: &[Diagnostic]) -> String {
    let mut s = String::new();
    for (i, x) in d.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&x.to_string());
    }
    s
}

impl PolicyError {
    /// The diagnostics, if this is a validation error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(d) => d,
            PolicyError::Read { .. } | PolicyError::File { .. } => &[],
        }
    }
}

/// Maps byte offsets in a source text to 1-based line and column.
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
        (line, col)
    }

    pub fn diag(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        Diagnostic {
            file: self.name.to_string(),
            line,
            col,
            field: field.into(),
            message: message.into(),
            hint,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
