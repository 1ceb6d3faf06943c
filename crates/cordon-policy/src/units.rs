//! Sizes ("4GiB") and durations ("2h", "1h30m") as written in policies.

use std::time::Duration;

/// Parses a byte size: a number with an optional unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB).
/// Units are binary (1 GiB = 1024^3) whether or not the `i` is written, as `ulimit` and cgroups do.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("`{s}` does not start with a number"));
    }
    let n: f64 = num.parse().map_err(|_| format!("`{num}` is not a number"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit `{other}`")),
    };
    let v = n * mult as f64;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v as u64)
}

/// Parses a duration made of number+unit parts: `90s`, `30m`, `2h`, `1h30m`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut saw_unit = false;
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if num.is_empty() {
            return Err(format!("`{s}`: unit `{unit}` has no number before it"));
        }
        let n: u64 = num.parse().map_err(|_| format!("`{num}` is too large"))?;
        let secs = match unit.as_str() {
            "ms" => {
                total = total.saturating_add(n / 1000);
                num.clear();
                saw_unit = true;
                continue;
            }
            "s" | "sec" => n,
            "m" | "min" => n.saturating_mul(60),
            "h" => n.saturating_mul(3600),
            "d" => n.saturating_mul(86400),
            other => return Err(format!("unknown duration unit `{other}` (use s, m, h or d)")),
        };
        total = total.saturating_add(secs);
        num.clear();
        saw_unit = true;
    }
    if !num.is_empty() {
        if saw_unit {
            return Err(format!("`{s}`: trailing number without a unit"));
        }
        return Err(format!("`{s}` has no unit (write e.g. `{num}s` or `{num}m`)"));
    }
    Ok(Duration::from_secs(total))
}

/// Formats bytes the way policies write them.
pub fn fmt_size(b: u64) -> String {
    const U: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, m) in U {
        if b >= m && b.is_multiple_of(m) {
            return format!("{}{name}", b / m);
        }
    }
    for (name, m) in U {
        if b >= m {
            return format!("{:.1}{name}", b as f64 / m as f64);
        }
    }
    format!("{b}B")
}

/// Formats a duration compactly: `2h`, `1h30m`, `45s`.
pub fn fmt_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let mut out = String::new();
    for (u, m) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= m {
            out.push_str(&format!("{}{u}", s / m));
            s %= m;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn sizes() {
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("4 parsecs").is_err());
        assert_eq!(fmt_size(4 << 30), "4GiB");
    }
    #[test]
    fn durations() {
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("3y").is_err());
        assert_eq!(fmt_duration(Duration::from_secs(5400)), "1h30m");
    }
}
