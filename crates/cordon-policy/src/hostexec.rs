//! Workspace files that run code on the host, outside every sandbox (THREATS.md category 3): the
//! workspace is writable by design, and these are where an agent can plant code that runs later
//! with the user's full rights. Two kinds, as data a policy names by group:
//!
//! - `@host-exec-auto` (in `fs.protect`): files a tool runs without anyone asking (direnv on `cd`,
//!   VS Code on folder open, git on commit through hooks). Read-only inside the session; an absent
//!   one cannot be created.
//! - `@host-exec-manual` (in `fs.review`): files that run when a human runs something (CI, make,
//!   npm scripts, build scripts, container builds). Writable, but every change is listed at the
//!   end of the session, recorded and alerted on, so the human reviews exactly those.
//!
//! Teams add their own tools' files with their own entries next to the groups.

/// A named list of workspace-relative entries.
pub struct WorkspaceGroup {
    pub name: &'static str,
    pub about: &'static str,
    /// For `@host-exec-auto`: relative paths (no globs; a trailing `/` marks a directory). For
    /// `@host-exec-manual`: relative glob patterns (`*` within a name, `**` across directories).
    pub entries: &'static [&'static str],
}

/// Files run without anyone asking. Concrete paths, so that the sandbox can hold each one
/// read-only (or, when absent, keep it from being created).
pub const HOST_EXEC_AUTO: WorkspaceGroup = WorkspaceGroup {
    name: "@host-exec-auto",
    about: "workspace files a tool on the host runs without asking: direnv, editor tasks, git hook managers",
    entries: &[
        // direnv: sourced when the user changes into the directory.
        ".envrc",
        ".envrc.local",
        // VS Code: `runOn: folderOpen` tasks; settings that point tools at executables.
        ".vscode/tasks.json",
        ".vscode/settings.json",
        // JetBrains IDEs: run configurations and startup tasks live in the project directory.
        ".idea/",
        // Dev containers: lifecycle commands (postCreateCommand, initializeCommand on the host).
        ".devcontainer/",
        ".devcontainer.json",
        // Git hook managers: scripts run on the user's next commit or push.
        ".husky/",
        ".pre-commit-config.yaml",
        "lefthook.yml",
        ".lefthook.yml",
        // Filter drivers and their attributes run programs on checkout and add.
        ".git/info/attributes",
    ],
};

/// Why `@host-exec-auto` lists `entry`: the tool that runs it, and when. Quoted in `cordon policy
/// explain` and in every refusal of a write to it.
pub fn auto_reason(entry: &str) -> Option<&'static str> {
    Some(match entry {
        ".envrc" => "direnv runs it on the host when you cd here",
        ".envrc.local" => "direnv runs it on the host through an allowed .envrc, without asking again",
        ".vscode/tasks.json" => "VS Code runs its `folderOpen` tasks when the folder is opened",
        ".vscode/settings.json" => "VS Code and its extensions run the programs its settings point at",
        ".idea/" => "JetBrains IDEs run its run configurations and startup tasks",
        ".devcontainer/" | ".devcontainer.json" => {
            "dev container tools run its lifecycle commands (initializeCommand on the host)"
        }
        ".husky/" => "husky runs its scripts as git hooks at the next commit or push",
        ".pre-commit-config.yaml" => "pre-commit runs the hooks it names at the next commit",
        "lefthook.yml" | ".lefthook.yml" => "lefthook runs the commands it names at the next commit or push",
        ".git/info/attributes" => "git runs the filter drivers it assigns on checkout and add",
        _ => return None,
    })
}

/// Files that run when a human runs something. Patterns, matched anywhere they apply.
pub const HOST_EXEC_MANUAL: WorkspaceGroup = WorkspaceGroup {
    name: "@host-exec-manual",
    about: "workspace files that run when a human runs something: CI, build scripts, package scripts, container builds",
    entries: &[
        // CI: runs with the project's secrets.
        ".github/workflows/**",
        ".github/actions/**",
        ".gitlab-ci.yml",
        ".circleci/**",
        ".buildkite/**",
        "Jenkinsfile",
        "azure-pipelines.yml",
        ".travis.yml",
        "bitbucket-pipelines.yml",
        // Build tools and task runners.
        "**/Makefile",
        "**/makefile",
        "**/GNUmakefile",
        "**/*.mk",
        "justfile",
        "Justfile",
        "Taskfile.yml",
        "Rakefile",
        "**/CMakeLists.txt",
        "**/build.gradle",
        "**/build.gradle.kts",
        "settings.gradle",
        "settings.gradle.kts",
        "gradlew",
        "**/pom.xml",
        // Language package scripts and build hooks.
        "**/package.json",
        "**/build.rs",
        ".cargo/config",
        ".cargo/config.toml",
        "**/setup.py",
        "**/setup.cfg",
        "**/pyproject.toml",
        "noxfile.py",
        "tox.ini",
        // Container builds.
        "**/Dockerfile",
        "**/Dockerfile.*",
        "**/*.dockerfile",
        "**/Containerfile",
        "docker-compose*.yml",
        "docker-compose*.yaml",
        "compose.yml",
        "compose.yaml",
        // Shell scripts at the top of the repository, and direnv files below it.
        "*.sh",
        "**/.envrc",
        // Submodule URLs: fetched and checked out by the user's next `git submodule update`.
        ".gitmodules",
    ],
};

/// Directories a scan for `@host-exec-manual` never enters: dependencies and build output, which
/// the agent's own tools rewrite wholesale and which no human reviews.
pub const REVIEW_SKIP_DIRS: &[&str] =
    &[".git", "node_modules", "target", ".venv", "venv", "__pycache__", ".tox", ".cache", ".npm", ".cargo/registry"];

pub const WORKSPACE_GROUPS: &[&WorkspaceGroup] = &[&HOST_EXEC_AUTO, &HOST_EXEC_MANUAL];

/// The workspace group named `name` (`@host-exec-auto`, `@host-exec-manual`).
pub fn workspace_group(name: &str) -> Option<&'static WorkspaceGroup> {
    WORKSPACE_GROUPS.iter().copied().find(|g| g.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_found_by_name_and_entries_are_relative() {
        for g in WORKSPACE_GROUPS {
            assert_eq!(workspace_group(g.name).map(|x| x.name), Some(g.name));
            for e in g.entries {
                assert!(!e.starts_with('/') && !e.contains(".."), "{}: {e}", g.name);
            }
        }
        assert!(workspace_group("@nope").is_none());
    }

    #[test]
    fn auto_entries_are_concrete_paths_each_with_its_reason() {
        for e in HOST_EXEC_AUTO.entries {
            assert!(!e.contains('*'), "{e}: the sandbox binds these by path, globs cannot be bound");
            assert!(auto_reason(e).is_some(), "{e}: a refusal quotes why it is protected");
        }
    }
}
