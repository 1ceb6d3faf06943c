//! Hold mode's patch: a git-style unified diff of one file (`a/` and `b/` prefixes, 3 lines of
//! context, mode changes and new or deleted files as git's extended headers), applicable with
//! `git apply` and `patch -p1` from the workspace. The edit script is Myers' (minimal); past a
//! bound on its work the changed middle becomes one replacement, still exact, only larger.

/// The most edits Myers looks for before the middle is replaced whole (its trace is about D² / 2
/// entries: 2000 → some 8 MB).
const MAX_D: usize = 2000;
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Same,
    Del,
    Ins,
}

/// Git records a file's mode as 100755 or 100644: the executable bit only.
pub fn git_mode(mode: u32) -> u32 {
    if mode & 0o100 != 0 {
        0o100755
    } else {
        0o100644
    }
}

/// Can `path` stand unquoted in a diff header? (git quotes other names; patch(1) does not read them.)
pub fn plain_path(path: &str) -> bool {
    !path.is_empty() && !path.chars().any(|c| c.is_control() || matches!(c, '"' | '\\'))
}

/// The diff of one file from `before` to `after` (None: absent), each its contents and mode.
pub fn file(path: &str, before: Option<(&[u8], u32)>, after: Option<(&[u8], u32)>) -> String {
    let mut s = format!("diff --git a/{path} b/{path}\n");
    match (before, after) {
        (None, Some((_, m))) => s.push_str(&format!("new file mode {:o}\n", git_mode(m))),
        (Some((_, m)), None) => s.push_str(&format!("deleted file mode {:o}\n", git_mode(m))),
        (Some((_, x)), Some((_, y))) if git_mode(x) != git_mode(y) => {
            s.push_str(&format!("old mode {:o}\nnew mode {:o}\n", git_mode(x), git_mode(y)));
        }
        _ => {}
    }
    let (a, b) = (before.map_or(&b""[..], |x| x.0), after.map_or(&b""[..], |x| x.0));
    let hunks = hunks(a, b);
    if hunks.is_empty() {
        return s;
    }
    s.push_str(&if before.is_some() { format!("--- a/{path}\n") } else { "--- /dev/null\n".into() });
    s.push_str(&if after.is_some() { format!("+++ b/{path}\n") } else { "+++ /dev/null\n".into() });
    s.push_str(&hunks);
    s
}

/// Lines with their `\n` (the last may lack it).
fn lines(b: &[u8]) -> Vec<&[u8]> {
    b.split_inclusive(|&c| c == b'\n').collect()
}

fn hunks(a: &[u8], b: &[u8]) -> String {
    let (a, b) = (lines(a), lines(b));
    let ops = script(&a, &b);
    // Positions in a and b before each op.
    let mut pos = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0, 0);
    for op in &ops {
        pos.push((i, j));
        match op {
            Op::Same => (i, j) = (i + 1, j + 1),
            Op::Del => i += 1,
            Op::Ins => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Same).collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        // One hunk: changes whose gaps are at most 2·CONTEXT lines, with CONTEXT around them.
        let first = changed[k];
        let mut last = first;
        while k + 1 < changed.len() && changed[k + 1] - last <= 2 * CONTEXT + 1 {
            k += 1;
            last = changed[k];
        }
        k += 1;
        let (from, to) = (first.saturating_sub(CONTEXT), (last + CONTEXT + 1).min(ops.len()));
        let (mut na, mut nb, mut body) = (0, 0, Vec::<u8>::new());
        for (op, &(x, y)) in ops[from..to].iter().zip(&pos[from..to]) {
            let (mark, line) = match op {
                Op::Same => {
                    na += 1;
                    nb += 1;
                    (b' ', a[x])
                }
                Op::Del => {
                    na += 1;
                    (b'-', a[x])
                }
                Op::Ins => {
                    nb += 1;
                    (b'+', b[y])
                }
            };
            body.push(mark);
            body.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                body.extend_from_slice(b"\n\\ No newline at end of file\n");
            }
        }
        let (x0, y0) = pos[from];
        let range = |start: usize, n: usize| match n {
            0 => format!("{start},0"),
            1 => format!("{}", start + 1),
            _ => format!("{},{n}", start + 1),
        };
        out.push_str(&format!("@@ -{} +{} @@\n", range(x0, na), range(y0, nb)));
        // The callers hold text only (checked UTF-8): lossless.
        out.push_str(&String::from_utf8_lossy(&body));
    }
    out
}

/// The edit script from `a` to `b`: the common ends, and the middle by Myers or, past [`MAX_D`],
/// as one replacement.
fn script(a: &[&[u8]], b: &[&[u8]]) -> Vec<Op> {
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..].iter().rev().zip(b[pre..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (ma, mb) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops = vec![Op::Same; pre];
    match myers(ma, mb) {
        Some(mid) => ops.extend(mid),
        None => {
            ops.extend(std::iter::repeat_n(Op::Del, ma.len()));
            ops.extend(std::iter::repeat_n(Op::Ins, mb.len()));
        }
    }
    ops.extend(std::iter::repeat_n(Op::Same, suf));
    ops
}

/// Myers' greedy shortest edit script, or None when it needs more than [`MAX_D`] edits.
fn myers(a: &[&[u8]], b: &[&[u8]]) -> Option<Vec<Op>> {
    let (n, m) = (a.len() as isize, b.len() as isize);
    let mut f = super::myers::Frontier::new(a.len(), b.len());
    // trace[d]: the frontier on diagonals -d..=d after step d.
    let mut trace: Vec<Vec<isize>> = vec![];
    let mut end = None;
    for d in 0..=((a.len() + b.len()).min(MAX_D) as isize) {
        let done = f.step(a, b, d);
        trace.push(f.snapshot(d));
        if done {
            end = Some(d);
            break;
        }
    }
    let dmax = end?;
    let mut ops = vec![];
    let (mut x, mut y) = (n, m);
    for d in (1..=dmax).rev() {
        let prev = &trace[d as usize - 1];
        let at = |k: isize| prev[(k + d - 1) as usize];
        let k = x - y;
        // Down (an insertion) from diagonal k+1, or right (a deletion) from k-1; then the snake.
        let down = k == -d || (k != d && at(k - 1) < at(k + 1));
        let pk = if down { k + 1 } else { k - 1 };
        let (px, py) = (at(pk), at(pk) - pk);
        let sx = if down { px } else { px + 1 };
        // The snake's length: x - sx equal lines.
        ops.extend(std::iter::repeat_n(Op::Same, (x - sx) as usize));
        ops.push(if down { Op::Ins } else { Op::Del });
        (x, y) = (px, py);
    }
    // d = 0: the snake from (0, 0), on the diagonal (x == y).
    ops.extend(std::iter::repeat_n(Op::Same, x as usize));
    ops.reverse();
    Some(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies `ops` to `a` (checked against `b` line by line).
    fn replay(a: &[&[u8]], b: &[&[u8]], ops: &[Op]) -> bool {
        let (mut i, mut j) = (0, 0);
        for op in ops {
            match op {
                Op::Same => {
                    if a.get(i) != b.get(j) || a.get(i).is_none() {
                        return false;
                    }
                    i += 1;
                    j += 1;
                }
                Op::Del => i += 1,
                Op::Ins => j += 1,
            }
        }
        i == a.len() && j == b.len()
    }

    #[test]
    fn the_script_is_exact_and_minimal_on_small_cases() {
        let cases: &[(&str, &str, usize)] = &[
            ("a\nb\nc\n", "a\nx\nc\n", 2),
            ("", "a\nb\n", 2),
            ("a\nb\n", "", 2),
            ("a\nb\nc\na\nb\nb\na\n", "c\nb\na\nb\na\nc\n", 5),
            ("x\n", "x", 2),
            ("same\n", "same\n", 0),
        ];
        for (x, y, d) in cases {
            let (a, b) = (lines(x.as_bytes()), lines(y.as_bytes()));
            let ops = script(&a, &b);
            assert!(replay(&a, &b, &ops), "{x:?} -> {y:?}: {ops:?}");
            assert_eq!(ops.iter().filter(|o| **o != Op::Same).count(), *d, "{x:?} -> {y:?}: {ops:?}");
        }
    }

    #[test]
    fn hunks_look_like_git_s() {
        let p = file(
            "Makefile",
            Some((b"all:\n\tcc main.c\n", 0o644)),
            Some((b"all:\n\tcurl x | sh\n\tcc main.c\n", 0o644)),
        );
        assert_eq!(
            p,
            "diff --git a/Makefile b/Makefile\n--- a/Makefile\n+++ b/Makefile\n@@ -1,2 +1,3 @@\n all:\n+\tcurl x | sh\n \tcc main.c\n"
        );
        let p = file("x.yml", None, Some((b"on: push", 0o600)));
        assert_eq!(
            p,
            "diff --git a/x.yml b/x.yml\nnew file mode 100644\n--- /dev/null\n+++ b/x.yml\n@@ -0,0 +1 @@\n+on: push\n\\ No newline at end of file\n"
        );
        let p = file("run.sh", Some((b"echo\n", 0o644)), Some((b"echo\n", 0o755)));
        assert_eq!(p, "diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n");
        let p = file("D", Some((b"a\n", 0o640)), None);
        assert_eq!(p, "diff --git a/D b/D\ndeleted file mode 100644\n--- a/D\n+++ /dev/null\n@@ -1 +0,0 @@\n-a\n");
    }

    #[test]
    fn distant_changes_make_separate_hunks_and_a_huge_rewrite_stays_exact() {
        let a: String = (0..40).map(|i| format!("l{i}\n")).collect();
        let b = a.replace("l2\n", "L2\n").replace("l30\n", "L30\n");
        let p = file("f", Some((a.as_bytes(), 0o644)), Some((b.as_bytes(), 0o644)));
        assert_eq!(p.matches("\n@@ ").count(), 2, "{p}");
        assert!(p.contains("@@ -1,6 +1,6 @@\n") && p.contains("@@ -28,7 +28,7 @@\n"), "{p}");
        let a: String = (0..5000).map(|i| format!("a{i}\n")).collect();
        let b: String = (0..5000).map(|i| format!("b{i}\n")).collect();
        let (la, lb) = (lines(a.as_bytes()), lines(b.as_bytes()));
        let ops = script(&la, &lb);
        assert!(replay(&la, &lb, &ops));
        assert_eq!(ops.len(), 10_000);
    }
}
