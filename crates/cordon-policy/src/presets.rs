//! Named host sets for `[net] allow` and `--allow-net`: what an agent's everyday tools really reach.
//! `@pypi` is both of pip's hosts, so a user never has to discover the second one from a failure.

/// (name, what it is for, its entries).
pub const PRESETS: &[(&str, &str, &[&str])] = &[
    ("pypi", "pip and uv: the index and the file host", &["pypi.org:443", "files.pythonhosted.org:443"]),
    ("npm", "npm, pnpm and yarn: the public registry", &["registry.npmjs.org:443", "registry.yarnpkg.com:443"]),
    (
        "crates",
        "cargo: the sparse index and crate downloads",
        &["index.crates.io:443", "static.crates.io:443", "crates.io:443"],
    ),
    (
        "github",
        "git over HTTPS, the API, release and raw downloads",
        &[
            "github.com:443",
            "api.github.com:443",
            "codeload.github.com:443",
            "objects.githubusercontent.com:443",
            "raw.githubusercontent.com:443",
            "release-assets.githubusercontent.com:443",
        ],
    ),
    ("anthropic", "Claude Code and the Anthropic API", &["api.anthropic.com:443", "statsig.anthropic.com:443"]),
    ("openai", "Codex and the OpenAI API", &["api.openai.com:443", "chatgpt.com:443", "auth.openai.com:443"]),
];

/// The entries of `@NAME`, or None.
pub fn get(name: &str) -> Option<&'static [&'static str]> {
    PRESETS.iter().find(|(n, _, _)| *n == name).map(|(_, _, e)| *e)
}

/// The names, for hints: "@pypi, @npm, ...".
pub fn names() -> String {
    PRESETS.iter().map(|(n, _, _)| format!("@{n}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_entry_is_a_valid_allow_entry_with_a_port() {
        for (name, _, entries) in PRESETS {
            assert!(!entries.is_empty(), "{name}");
            for e in *entries {
                let a = crate::netspec::parse_allow(e).unwrap_or_else(|m| panic!("@{name}: {e}: {m}"));
                assert_eq!(a.port, Some(443), "@{name}: {e}");
            }
        }
    }
}
