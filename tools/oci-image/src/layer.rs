//! Builds the single gzip layer from the entries.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;

use flate2::{Compression, GzBuilder};
use tar::{EntryType, Header};

use crate::entry::{DEFAULT_DIR_MODE, Entry, EntryKind};

/// Why the layer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("/{path} is given twice")]
    Duplicate { path: String },
    #[error("/{path} needs /{parent} to be a directory, but it is given as a file or symlink")]
    ParentNotDir { path: String, parent: String },
    #[error("reading host file {} for /{path}: {source}", file.display())]
    ReadSource {
        file: PathBuf,
        path: String,
        source: std::io::Error,
    },
    #[error("host file {} for /{path} is not a regular file", file.display())]
    NotRegular { file: PathBuf, path: String },
    #[error("writing tar entry /{path}: {source}")]
    Tar {
        path: String,
        source: std::io::Error,
    },
    #[error("compressing the layer: {0}")]
    Gzip(std::io::Error),
}

/// A finished layer blob.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The gzip-compressed tar, as stored in `blobs/sha256/`.
    pub blob: Vec<u8>,
    /// Hex SHA-256 of `blob` (the blob digest).
    pub digest: String,
    /// Hex SHA-256 of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
}

/// Builds a gzip tar holding `entries`, adding any missing parent
/// directories (mode 0755). Entries are written parent-first in path order,
/// all owned by 0:0 with mtime 0, so equal input gives equal bytes.
pub fn build_layer(entries: &[Entry]) -> Result<Layer, LayerError> {
    // Keying by components (not by the joined string) sorts a directory
    // right before its own children.
    let mut tree: BTreeMap<Vec<String>, EntryKind> = BTreeMap::new();
    for e in entries {
        if tree.insert(e.components.clone(), e.kind.clone()).is_some() {
            return Err(LayerError::Duplicate { path: e.tar_path() });
        }
    }
    for e in entries {
        for depth in 1..e.components.len() {
            let parent = e.components.get(..depth).unwrap_or_default().to_vec();
            match tree.get(&parent) {
                None => {
                    let dir = EntryKind::Dir {
                        mode: DEFAULT_DIR_MODE,
                    };
                    tree.insert(parent, dir);
                }
                Some(EntryKind::Dir { .. }) => {}
                Some(_) => {
                    return Err(LayerError::ParentNotDir {
                        path: e.tar_path(),
                        parent: parent.join("/"),
                    });
                }
            }
        }
    }

    let mut builder = tar::Builder::new(Vec::new());
    for (components, kind) in &tree {
        append(&mut builder, &components.join("/"), kind)?;
    }
    let tar = builder.into_inner().map_err(|source| LayerError::Tar {
        path: String::from("(end of archive)"),
        source,
    })?;

    // GzBuilder writes mtime 0 and no file name unless told otherwise.
    let mut gz = GzBuilder::new().write(Vec::new(), Compression::best());
    gz.write_all(&tar).map_err(LayerError::Gzip)?;
    let blob = gz.finish().map_err(LayerError::Gzip)?;

    Ok(Layer {
        digest: crate::sha256_hex(&blob),
        diff_id: crate::sha256_hex(&tar),
        blob,
    })
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: &EntryKind,
) -> Result<(), LayerError> {
    let tar_err = |source| LayerError::Tar {
        path: path.to_owned(),
        source,
    };
    let mut header = Header::new_gnu();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    match kind {
        EntryKind::Dir { mode } => {
            header.set_entry_type(EntryType::Directory);
            header.set_mode(*mode);
            header.set_size(0);
            builder
                .append_data(&mut header, format!("{path}/"), std::io::empty())
                .map_err(tar_err)
        }
        EntryKind::Symlink { target } => {
            header.set_entry_type(EntryType::Symlink);
            header.set_mode(0o777);
            header.set_size(0);
            builder
                .append_link(&mut header, path, target)
                .map_err(tar_err)
        }
        EntryKind::File { source, mode } => {
            let read_err = |e| LayerError::ReadSource {
                file: source.clone(),
                path: path.to_owned(),
                source: e,
            };
            let meta = std::fs::metadata(source).map_err(read_err)?;
            if !meta.is_file() {
                return Err(LayerError::NotRegular {
                    file: source.clone(),
                    path: path.to_owned(),
                });
            }
            // Read it whole: the header size must match the bytes written
            // even if the host file changes meanwhile.
            let data = std::fs::read(source).map_err(read_err)?;
            header.set_entry_type(EntryType::Regular);
            header.set_mode(mode.unwrap_or(meta.permissions().mode() & 0o7777));
            header.set_size(data.len() as u64);
            builder
                .append_data(&mut header, path, data.as_slice())
                .map_err(tar_err)
        }
    }
}
