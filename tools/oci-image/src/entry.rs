//! Parsing of the `--file`, `--symlink` and `--dir` entry specs.

use std::path::PathBuf;

/// Why an entry spec was rejected.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("{flag} {spec:?}: expected {expected}")]
    Syntax {
        flag: &'static str,
        spec: String,
        expected: &'static str,
    },
    #[error("{flag} {spec:?}: container path {path:?} must be absolute")]
    NotAbsolute {
        flag: &'static str,
        spec: String,
        path: String,
    },
    #[error(
        "{flag} {spec:?}: container path {path:?} may not contain '.' or '..' or name the root"
    )]
    BadPath {
        flag: &'static str,
        spec: String,
        path: String,
    },
    #[error("{flag} {spec:?}: mode {mode:?} is not an octal number up to 7777")]
    BadMode {
        flag: &'static str,
        spec: String,
        mode: String,
    },
}

/// What to put at a container path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file copied from the host. Without a mode, the host
    /// file's permission bits are used.
    File { source: PathBuf, mode: Option<u32> },
    /// A symbolic link; the target is stored as given (may be relative).
    Symlink { target: String },
    /// A directory.
    Dir { mode: u32 },
}

/// One entry of the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path components below `/`, never empty, never `.` or `..`.
    pub components: Vec<String>,
    pub kind: EntryKind,
}

/// Default mode of a directory given without one (and of implicit parents).
pub const DEFAULT_DIR_MODE: u32 = 0o755;

impl Entry {
    /// `HOST_SRC:/container/path[:mode]`. The host path may itself contain
    /// ':'; the container path is the part after the last ":/".
    pub fn parse_file(spec: &str) -> Result<Self, EntryError> {
        const FLAG: &str = "--file";
        let Some(split) = spec.rfind(":/") else {
            return Err(syntax(FLAG, spec, "HOST_SRC:/container/path[:mode]"));
        };
        let (source, rest) = (&spec[..split], &spec[split + 1..]);
        if source.is_empty() {
            return Err(syntax(FLAG, spec, "a non-empty HOST_SRC"));
        }
        let (path, mode) = split_mode(FLAG, spec, rest)?;
        Ok(Self {
            components: components(FLAG, spec, path)?,
            kind: EntryKind::File {
                source: PathBuf::from(source),
                mode,
            },
        })
    }

    /// `TARGET:/link/path`.
    pub fn parse_symlink(spec: &str) -> Result<Self, EntryError> {
        const FLAG: &str = "--symlink";
        let Some(split) = spec.rfind(":/") else {
            return Err(syntax(FLAG, spec, "TARGET:/link/path"));
        };
        let (target, path) = (&spec[..split], &spec[split + 1..]);
        if target.is_empty() {
            return Err(syntax(FLAG, spec, "a non-empty TARGET"));
        }
        Ok(Self {
            components: components(FLAG, spec, path)?,
            kind: EntryKind::Symlink {
                target: target.to_owned(),
            },
        })
    }

    /// `/path[:mode]`.
    pub fn parse_dir(spec: &str) -> Result<Self, EntryError> {
        const FLAG: &str = "--dir";
        let (path, mode) = split_mode(FLAG, spec, spec)?;
        Ok(Self {
            components: components(FLAG, spec, path)?,
            kind: EntryKind::Dir {
                mode: mode.unwrap_or(DEFAULT_DIR_MODE),
            },
        })
    }

    /// The path as stored in the tar (no leading '/').
    pub fn tar_path(&self) -> String {
        self.components.join("/")
    }
}

fn syntax(flag: &'static str, spec: &str, expected: &'static str) -> EntryError {
    EntryError::Syntax {
        flag,
        spec: spec.to_owned(),
        expected,
    }
}

/// Splits `/path[:mode]` and parses the optional octal mode.
fn split_mode<'a>(
    flag: &'static str,
    spec: &str,
    rest: &'a str,
) -> Result<(&'a str, Option<u32>), EntryError> {
    let Some((path, mode)) = rest.rsplit_once(':') else {
        return Ok((rest, None));
    };
    match u32::from_str_radix(mode, 8) {
        Ok(m) if m <= 0o7777 && !mode.is_empty() => Ok((path, Some(m))),
        _ => Err(EntryError::BadMode {
            flag,
            spec: spec.to_owned(),
            mode: mode.to_owned(),
        }),
    }
}

/// Validates an absolute container path and splits it into components.
/// Repeated and trailing slashes are tolerated; '.' and '..' are not, so an
/// entry can never land outside the image root.
fn components(flag: &'static str, spec: &str, path: &str) -> Result<Vec<String>, EntryError> {
    if !path.starts_with('/') {
        return Err(EntryError::NotAbsolute {
            flag,
            spec: spec.to_owned(),
            path: path.to_owned(),
        });
    }
    let parts: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    if parts.is_empty() || parts.iter().any(|c| c == "." || c == "..") {
        return Err(EntryError::BadPath {
            flag,
            spec: spec.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_with_and_without_mode() {
        let e = Entry::parse_file("/usr/bin/busybox:/bin/busybox:0755").unwrap();
        assert_eq!(e.components, ["bin", "busybox"]);
        assert_eq!(
            e.kind,
            EntryKind::File {
                source: "/usr/bin/busybox".into(),
                mode: Some(0o755)
            }
        );
        let e = Entry::parse_file("a:b/c:/etc/passwd").unwrap();
        assert_eq!(e.tar_path(), "etc/passwd");
        assert_eq!(
            e.kind,
            EntryKind::File {
                source: "a:b/c".into(),
                mode: None
            }
        );
    }

    #[test]
    fn symlink_relative_and_absolute_targets() {
        let e = Entry::parse_symlink("busybox:/bin/sh").unwrap();
        assert_eq!(e.tar_path(), "bin/sh");
        assert_eq!(
            e.kind,
            EntryKind::Symlink {
                target: "busybox".into()
            }
        );
        let e = Entry::parse_symlink("/bin/busybox:/usr/bin/env").unwrap();
        assert_eq!(
            e.kind,
            EntryKind::Symlink {
                target: "/bin/busybox".into()
            }
        );
    }

    #[test]
    fn dir_modes() {
        let e = Entry::parse_dir("/tmp:1777").unwrap();
        assert_eq!(e.kind, EntryKind::Dir { mode: 0o1777 });
        let e = Entry::parse_dir("//var//www/").unwrap();
        assert_eq!(e.components, ["var", "www"]);
        assert_eq!(e.kind, EntryKind::Dir { mode: 0o755 });
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(matches!(
            Entry::parse_file("no-container-path"),
            Err(EntryError::Syntax { .. })
        ));
        assert!(matches!(
            Entry::parse_file(":/x"),
            Err(EntryError::Syntax { .. })
        ));
        assert!(matches!(
            Entry::parse_file("src:/x:999"),
            Err(EntryError::BadMode { .. })
        ));
        assert!(matches!(
            Entry::parse_file("src:/x:"),
            Err(EntryError::BadMode { .. })
        ));
        assert!(matches!(
            Entry::parse_dir("/x:17777"),
            Err(EntryError::BadMode { .. })
        ));
        assert!(matches!(
            Entry::parse_dir("relative"),
            Err(EntryError::NotAbsolute { .. })
        ));
        assert!(matches!(
            Entry::parse_dir("/a/../b"),
            Err(EntryError::BadPath { .. })
        ));
        assert!(matches!(
            Entry::parse_dir("/"),
            Err(EntryError::BadPath { .. })
        ));
        assert!(matches!(
            Entry::parse_symlink("target"),
            Err(EntryError::Syntax { .. })
        ));
        let msg = Entry::parse_dir("/x:9").unwrap_err().to_string();
        assert!(msg.contains("--dir") && msg.contains("\"9\""), "{msg}");
    }
}
