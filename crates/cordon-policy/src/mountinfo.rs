//! `/proc/PID/mountinfo` as data: one parser for every part that asks where something is mounted
//! (the sandbox's host detection, the sensor's cgroup2 root, doctor). The caller reads the file.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub point: PathBuf,
    pub fstype: String,
    /// Superblock options (the field after the source), e.g. `rw,memory` for a v1 cgroup.
    pub options: String,
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let point = pre.split(' ').nth(4)?;
            let mut it = post.split(' ');
            let fstype = it.next()?;
            let options = it.nth(1).unwrap_or("");
            Some(MountEntry { point: PathBuf::from(point), fstype: fstype.to_string(), options: options.to_string() })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_taken_from_both_halves() {
        let t = "29 1 0:26 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n\
                 30 29 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\nbroken line\n";
        let m = parse(t);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].point.to_str(), m[0].fstype.as_str()), (Some("/sys/fs/cgroup/unified"), "cgroup2"));
        assert_eq!(m[1].options, "rw,memory");
    }
}
