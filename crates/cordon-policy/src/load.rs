//! Reading policy files and following `extends` (built-ins and relative paths), with cycle detection.
//!
//! `extends` names built-in profiles (`builtin:NAME`) and policy files. A relative path is taken from
//! the directory of the file that names it, after symlinks are followed: a policy reached through a
//! link (`project/team.toml -> ../shared/team.toml`) extends the files next to its target
//! (`shared/`), the way the file would if it were opened where it lives. One file reached by two
//! names (a link and its target) is read once, and a cycle through a link is found as a cycle.

use crate::error::{Diagnostic, FileProblem, PolicyError, Source, Warning};
use crate::model::RawPolicy;
use crate::parse::parse;
use crate::validate::validate;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest policy or rule file cordon reads. A policy is a page or two of TOML; a path given by
/// mistake (`/dev/zero`, a log, a disk image) fails at once instead of filling memory.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Reads a policy or rule file: at most [`MAX_FILE_BYTES`], UTF-8, from a regular file or a character
/// device. Fifos and sockets are refused before they are opened (opening a fifo nobody writes to
/// blocks forever), and so are directories and block devices.
pub fn read_file(path: &Path) -> Result<String, PolicyError> {
    use std::os::unix::fs::FileTypeExt;
    let name = || path.display().to_string();
    let io = |e| PolicyError::Read { path: name(), source: e };
    let bad = |problem| PolicyError::File { path: name(), problem };
    let meta = std::fs::metadata(path).map_err(io)?;
    let t = meta.file_type();
    let kind = if t.is_dir() {
        Some("directory")
    } else if t.is_fifo() {
        Some("fifo (named pipe)")
    } else if t.is_socket() {
        Some("socket")
    } else if t.is_block_device() {
        Some("block device")
    } else {
        None
    };
    if let Some(kind) = kind {
        return Err(bad(FileProblem::NotRegular { kind }));
    }
    let too_large = || bad(FileProblem::TooLarge { limit: MAX_FILE_BYTES });
    if t.is_file() && meta.len() > MAX_FILE_BYTES {
        return Err(too_large());
    }
    // One byte more than the limit tells a file at the limit from a larger one (or an endless device).
    let mut buf = Vec::new();
    std::fs::File::open(path).and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut buf)).map_err(io)?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large());
    }
    String::from_utf8(buf).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let text = std::str::from_utf8(valid).unwrap_or_default();
        let (line, col) = Source::new("", text).line_col(text.len());
        bad(FileProblem::NotUtf8 { line, col })
    })
}

/// One file of a policy, as read and checked.
#[derive(Debug)]
pub struct Layer {
    /// `builtin:NAME` or the file path (as given, or as reached through `extends`).
    pub name: String,
    pub text: String,
    pub raw: RawPolicy,
    /// What the file is: `builtin:NAME`, or its path with every symlink resolved.
    id: String,
}

/// A policy and every file it extends, base first.
#[derive(Debug)]
pub struct Loaded {
    pub layers: Vec<Layer>,
}

impl Loaded {
    /// Entries that are valid but open far more than a host: each `[net] allow` and tool
    /// `net.allow` entry that [`crate::netspec::warning`] warns about, with its position, base first.
    /// `cordon run` prints those of `[net] allow` when the session uses the proxy.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut out = vec![];
        for l in &self.layers {
            let src = Source::new(&l.name, &l.text);
            let mut check = |list: &[toml::Spanned<String>], field: &str| {
                for (i, e) in list.iter().enumerate() {
                    if let Some(message) =
                        crate::netspec::parse_allow(e.get_ref()).ok().as_ref().and_then(crate::netspec::warning)
                    {
                        let (line, col) = src.line_col(e.span().start);
                        out.push(Warning { file: l.name.clone(), line, col, field: format!("{field}[{i}]"), message });
                    }
                }
            };
            check(&l.raw.net.allow, "net.allow");
            for (name, t) in &l.raw.tools {
                if let Some(n) = &t.get_ref().net {
                    check(&n.allow, &format!("tools.{name}.net.allow"));
                }
            }
        }
        out
    }

    /// The policy's full text, for the audit record: every layer, base first.
    pub fn full_text(&self) -> String {
        let mut s = String::new();
        for l in &self.layers {
            s.push_str(&format!("# ---- {} ----\n{}\n", l.name, l.text));
        }
        s
    }
}

/// Loads `builtin:NAME`, a bare built-in name, or a policy file path.
pub fn load(spec: &str) -> Result<Loaded, PolicyError> {
    let mut layers = Vec::new();
    let mut stack = Vec::new();
    let mut diags = Vec::new();
    load_into(spec, None, &mut stack, &mut layers, &mut diags)?;
    if diags.is_empty() {
        Ok(Loaded { layers })
    } else {
        Err(PolicyError::Invalid(diags))
    }
}

/// Parses and checks a policy given as text (used by `policy check` on stdin and by tests).
pub fn load_text(name: &str, text: &str) -> Result<Loaded, PolicyError> {
    let mut layers = Vec::new();
    let mut stack = vec![name.to_string()];
    let mut diags = Vec::new();
    let dir = Path::new(name).parent().map(Path::to_path_buf);
    add_layer(name.to_string(), name.to_string(), text.to_string(), dir, &mut stack, &mut layers, &mut diags)?;
    if diags.is_empty() {
        Ok(Loaded { layers })
    } else {
        Err(PolicyError::Invalid(diags))
    }
}

fn load_into(
    spec: &str,
    dir: Option<&Path>,
    stack: &mut Vec<String>,
    layers: &mut Vec<Layer>,
    diags: &mut Vec<Diagnostic>,
) -> Result<(), PolicyError> {
    let builtin = spec.strip_prefix("builtin:").or_else(|| {
        if dir.is_none() && !spec.contains('/') && !spec.ends_with(".toml") {
            Some(spec)
        } else {
            None
        }
    });
    let (name, id, text, base_dir) = if let Some(b) = builtin {
        let text = crate::builtin::text(b).ok_or_else(|| PolicyError::Read {
            path: format!("builtin:{b}"),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no built-in profile named `{b}` (have: {})", crate::builtin::names().join(", ")),
            ),
        })?;
        (format!("builtin:{b}"), format!("builtin:{b}"), text.to_string(), None)
    } else {
        let p: PathBuf = match dir {
            Some(d) if Path::new(spec).is_relative() => d.join(spec),
            _ => PathBuf::from(spec),
        };
        let text = read_file(&p)?;
        // The file's real place: its `extends` are relative to the directory it lives in.
        let real = p.canonicalize().map_err(|e| PolicyError::Read { path: p.display().to_string(), source: e })?;
        let parent = real.parent().map(Path::to_path_buf);
        (p.display().to_string(), real.display().to_string(), text, parent)
    };
    if layers.iter().any(|l| l.id == id) {
        return Ok(()); // diamond: already included
    }
    stack.push(id.clone());
    let r = add_layer(name, id, text, base_dir, stack, layers, diags);
    stack.pop();
    r
}

/// Checks one file and follows its `extends`; `stack` holds the ids of the files being loaded.
fn add_layer(
    name: String,
    id: String,
    text: String,
    dir: Option<PathBuf>,
    stack: &mut Vec<String>,
    layers: &mut Vec<Layer>,
    diags: &mut Vec<Diagnostic>,
) -> Result<(), PolicyError> {
    let src = Source::new(&name, &text);
    // Every error of the file, in file order: syntax and type errors, then the checks of the values
    // that did parse (a check on a value whose type was wrong is not repeated).
    let (raw, mut found) = parse(&src);
    if let Some(raw) = &raw {
        let typed: HashSet<String> = found.iter().map(|d| d.field.clone()).collect();
        found.extend(validate(raw, &src).into_iter().filter(|d| !typed.contains(&d.field)));
    }
    found.sort_by_key(|d| (d.line, d.col));
    let bad = !found.is_empty();
    diags.extend(found);
    let Some(raw) = raw.filter(|_| !bad) else {
        return Ok(());
    };
    for (i, ext) in raw.extends.iter().enumerate() {
        let spec = ext.get_ref();
        let resolved = if let Some(b) = spec.strip_prefix("builtin:") {
            format!("builtin:{b}")
        } else {
            let p = dir.as_deref().map(|d| d.join(spec)).unwrap_or_else(|| PathBuf::from(spec));
            p.canonicalize().unwrap_or(p).display().to_string()
        };
        if stack.contains(&resolved) {
            diags.push(src.diag(
                ext.span(),
                format!("extends[{i}]"),
                format!("`{spec}` extends itself (cycle: {} -> {resolved})", stack.join(" -> ")),
                Some("remove one of the extends entries".into()),
            ));
            continue;
        }
        let before = diags.len();
        match load_into(spec, Some(dir.as_deref().unwrap_or(Path::new("."))), stack, layers, diags) {
            Ok(()) => {}
            Err(PolicyError::Read { path, source }) => {
                diags.push(
                    src.diag(
                        ext.span(),
                        format!("extends[{i}]"),
                        format!("cannot read `{path}`: {source}"),
                        Some(
                            "a path in extends is relative to the directory this file lives in (its symlinks followed)"
                                .into(),
                        ),
                    ),
                );
            }
            Err(PolicyError::File { path, problem }) => {
                diags.push(src.diag(
                    ext.span(),
                    format!("extends[{i}]"),
                    format!("cannot read `{path}`: {problem}"),
                    Some(problem.hint().into()),
                ));
            }
            Err(e) => return Err(e),
        }
        if diags.len() > before {
            return Ok(());
        }
    }
    // An opt-out must name what this file or the ones it extends (loaded above) protect.
    let found = crate::protect::check_unprotect(&raw, &src, layers);
    if !found.is_empty() {
        diags.extend(found);
        return Ok(());
    }
    layers.push(Layer { name, text, raw, id });
    Ok(())
}
