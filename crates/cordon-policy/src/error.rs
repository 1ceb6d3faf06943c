//! Policy errors: every problem names the file, line, column and field, and gives a hint.

use std::cell::OnceCell;
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

/// Something valid that opens more than it seems to (e.g. a catch-all `[net] allow` range). Printed,
/// never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: warning in `{}`: {}", self.file, self.line, self.col, self.field, self.message)
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
            FileProblem::NotRegular { .. } => {
                "policies and rules are read from regular files; save it to a file and give that path"
            }
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

/// Maps byte offsets in a source text to 1-based line and column. The first lookup indexes the text
/// once (where each line starts, and the number of characters before every 64th byte), so that a
/// file with many errors is still reported in time linear in its size.
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
    index: OnceCell<Index>,
}

struct Index {
    /// Byte offset of each line's start (the first is 0).
    lines: Vec<usize>,
    /// `chars[k]`: the number of characters in the first `k * STEP` bytes.
    chars: Vec<usize>,
}

const STEP: usize = 64;

/// A byte that starts a UTF-8 character (not a continuation byte, 0b10xx_xxxx).
fn starts_char(b: &u8) -> bool {
    (*b as i8) >= -0x40
}

impl<'a> Source<'a> {
    pub fn new(name: &'a str, text: &'a str) -> Self {
        Source { name, text, index: OnceCell::new() }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let b = self.text.as_bytes();
            let lines = std::iter::once(0)
                .chain(b.iter().enumerate().filter(|(_, c)| **c == b'\n').map(|(i, _)| i + 1))
                .collect();
            let mut chars = vec![0];
            for chunk in b.chunks(STEP) {
                chars.push(chars[chars.len() - 1] + chunk.iter().filter(|c| starts_char(c)).count());
            }
            Index { lines, chars }
        })
    }

    /// Characters in `text[..offset]`.
    fn chars_before(&self, offset: usize) -> usize {
        let k = offset / STEP;
        self.index().chars[k] + self.text.as_bytes()[k * STEP..offset].iter().filter(|c| starts_char(c)).count()
    }

    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(self.text, offset.min(self.text.len()));
        let lines = &self.index().lines;
        let line = lines.partition_point(|&start| start <= offset);
        let start = lines[line - 1];
        (line, self.chars_before(offset) - self.chars_before(start) + 1)
    }

    pub fn diag(
        &self,
        span: std::ops::Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> Diagnostic {
        let (line, col) = self.line_col(span.start);
        Diagnostic { file: self.name.to_string(), line, col, field: field.into(), message: message.into(), hint }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_lines_and_characters_at_every_offset() {
        let text = format!("a = 1\né = \"ü€𝄞\"\n\n{}\nlast", "x€".repeat(100));
        let src = Source::new("t", &text);
        for offset in 0..=text.len() + 3 {
            let before = &text[..floor_char_boundary(&text, offset.min(text.len()))];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
            assert_eq!(src.line_col(offset), (line, col), "offset {offset}");
        }
    }
}
