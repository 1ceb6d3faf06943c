//! Built-in profiles, shipped as TOML so that they read like any user policy.

const PROFILES: &[(&str, &str)] = &[
    ("base", include_str!("profiles/base.toml")),
    ("agent", include_str!("profiles/agent.toml")),
    ("readonly", include_str!("profiles/readonly.toml")),
    ("build", include_str!("profiles/build.toml")),
    ("strict", include_str!("profiles/strict.toml")),
    ("claude-code", include_str!("profiles/claude-code.toml")),
    ("codex", include_str!("profiles/codex.toml")),
    ("mcp-tool", include_str!("profiles/mcp-tool.toml")),
];

/// The default profile when no policy is named.
pub const DEFAULT: &str = "agent";

pub fn text(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|(n, _)| *n).collect()
}
