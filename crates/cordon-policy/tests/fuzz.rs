//! Property test of the policy parser: tens of thousands of mutated policies (byte flips, insertions
//! of TOML-significant tokens, truncations, splices of the built-in profiles) must each either load or
//! fail with positioned diagnostics — never panic, never report a position outside the text.
//! Deterministic (fixed seeds) so that a failure reproduces; CORDON_FUZZ_ITERS raises the count.

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "=",
    "\"",
    "'",
    "\"\"\"",
    ",",
    "{",
    "}",
    "\n",
    "#",
    "@system",
    "@secrets",
    "~/",
    "$WORKSPACE",
    "..",
    "*",
    "-1",
    "99999999999999999999",
    "1e308",
    "nan",
    "inf",
    "true",
    "\u{0}",
    "\u{feff}",
    "é",
    "\\u0000",
    "[fs]",
    "[net]",
    "[limits]",
    "[[test]]",
    "[tools.x]",
    "read",
    "write",
    "version = 1",
    "extends = [\"builtin:agent\"]",
    "memory = \"",
    "GiB",
];

fn seeds() -> Vec<String> {
    let mut v: Vec<String> = cordon_policy::builtin::names()
        .iter()
        .filter_map(|n| cordon_policy::builtin::text(n))
        .map(|t| t.replace("extends = [\"builtin:base\"]", ""))
        .collect();
    v.push("version = 1\n[fs]\nread = [\"@system\"]\n[net]\nallow = [\"a.com:443\", \"[::1]:80\", \"10.0.0.0/8\"]\n[env.set]\nA = \"b\"\n".into());
    v
}

#[test]
fn mutated_policies_never_panic() {
    let iters: usize = std::env::var("CORDON_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let seeds = seeds();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut accepted = 0;
    for i in 0..iters {
        let base = &seeds[i % seeds.len()];
        let mut b: Vec<u8> = base.as_bytes().to_vec();
        let n = 1 + (xorshift(&mut rng) % 6) as usize;
        for _ in 0..n {
            let pos = if b.is_empty() { 0 } else { (xorshift(&mut rng) as usize) % b.len() };
            match xorshift(&mut rng) % 5 {
                0 => {
                    if !b.is_empty() {
                        b[pos] = (xorshift(&mut rng) & 0xff) as u8;
                    }
                }
                1 => {
                    let t = TOKENS[(xorshift(&mut rng) as usize) % TOKENS.len()];
                    b.splice(pos..pos, t.bytes());
                }
                2 => b.truncate(pos),
                3 => {
                    let end = (pos + (xorshift(&mut rng) % 40) as usize).min(b.len());
                    b.drain(pos..end);
                }
                _ => {
                    let other = seeds[(xorshift(&mut rng) as usize) % seeds.len()].as_bytes();
                    let o = (xorshift(&mut rng) as usize) % other.len().max(1);
                    b.splice(pos..pos, other[o..(o + 30).min(other.len())].iter().copied());
                }
            }
        }
        let text = String::from_utf8_lossy(&b).into_owned();
        let lines = text.lines().count().max(1) + 1;
        let res = std::panic::catch_unwind(|| cordon_policy::load_text("fuzz.toml", &text));
        match res {
            Err(_) => panic!("panic on iteration {i}; input:\n{text}"),
            Ok(Ok(l)) => {
                accepted += 1;
                let cx = cordon_policy::Context { home: "/h".into(), workspace: "/w".into(), tmp: "/tmp".into() };
                let c = cordon_policy::compile(&l, &cx);
                let _ = cordon_policy::explain::explain(&c);
                let _ = cordon_policy::export::apparmor(&c);
                let _ = cordon_policy::export::oci_seccomp(&c);
            }
            Ok(Err(e)) => {
                for d in e.diagnostics() {
                    assert!(
                        d.line >= 1 && d.line <= lines && d.col >= 1,
                        "iteration {i}: position {}:{} outside the text",
                        d.line,
                        d.col
                    );
                }
            }
        }
    }
    eprintln!("{iters} mutated policies: {accepted} accepted, {} rejected with positions, 0 panics", iters - accepted);
}
