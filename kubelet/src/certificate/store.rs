//! The cert dir, laid out as the Go kubelet's certificate store
//! (client-go `util/certificate/certificate_store.go`): each certificate
//! and its key in `<prefix>-<timestamp>.pem` (mode 0600), and
//! `<prefix>-current.pem`, a symlink to the one in use, which is moved by
//! making `<prefix>-updated.pem` and renaming it over the old link.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::pem::{Identity, SecretPem};
use super::{CertificateError, Result};

/// The client certificate's file prefix.
pub const CLIENT_PREFIX: &str = "kubelet-client";
/// The serving certificate's file prefix.
pub const SERVER_PREFIX: &str = "kubelet-server";

/// `<dir>/<prefix>-*.pem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateStore {
    dir: PathBuf,
    prefix: String,
}

impl CertificateStore {
    pub fn new(dir: impl Into<PathBuf>, prefix: impl Into<String>) -> Self {
        CertificateStore {
            dir: dir.into(),
            prefix: prefix.into(),
        }
    }

    /// The client certificate's store in `cert_dir`.
    pub fn client(cert_dir: impl Into<PathBuf>) -> Self {
        Self::new(cert_dir, CLIENT_PREFIX)
    }

    /// The serving certificate's store in `cert_dir`.
    pub fn server(cert_dir: impl Into<PathBuf>) -> Self {
        Self::new(cert_dir, SERVER_PREFIX)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<prefix>-current.pem`: what a kubeconfig or TLS config points at.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}-current.pem", self.prefix))
    }

    /// The identity `<prefix>-current.pem` holds, or `None` if there is
    /// none (no link, or a link to a file that is gone).
    pub fn current(&self) -> Result<Option<Identity>> {
        let path = self.current_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CertificateError::io("reading", path, e)),
        };
        Identity::from_pem(&text, &text)
            .map(Some)
            .map_err(|reason| CertificateError::StoreInvalid { path, reason })
    }

    /// Writes the identity as `<prefix>-<UTC timestamp>.pem` and points
    /// `<prefix>-current.pem` at it. Returns the new file's path. The file
    /// appears whole (written aside, synced, renamed) and the link moves
    /// atomically, so a reader sees the old pair or the new one.
    pub fn update(&self, identity: &Identity) -> Result<PathBuf> {
        create_dir(&self.dir)?;
        let stamp = jiff::Timestamp::now()
            .strftime("%Y-%m-%d-%H-%M-%S")
            .to_string();
        let name = format!("{}-{stamp}.pem", self.prefix);
        let path = self.dir.join(&name);
        write_private(&path, &identity.to_file_pem())?;
        // A relative target: the dir can move and the link still resolves.
        let updated = self.dir.join(format!("{}-updated.pem", self.prefix));
        match fs::remove_file(&updated) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CertificateError::io("removing", updated, e)),
        }
        std::os::unix::fs::symlink(&name, &updated)
            .map_err(|e| CertificateError::io("creating symlink", &updated, e))?;
        let current = self.current_path();
        fs::rename(&updated, &current)
            .map_err(|e| CertificateError::io("replacing symlink", &current, e))?;
        sync_dir(&self.dir);
        Ok(path)
    }
}

/// Creates `dir` (0755, as the Go kubelet's cert dir) if missing.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| CertificateError::io("creating directory", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| CertificateError::io("setting permissions of", dir, e))
}

/// Writes `path` whole with mode 0600: to a temporary file beside it,
/// synced, then renamed over it.
pub(crate) fn write_private(path: &Path, contents: &SecretPem) -> Result<()> {
    write_atomic(path, contents.expose().as_bytes())
}

pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // An existing temporary file keeps its mode: set it again.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(contents)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(CertificateError::io("writing", path, e));
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        CertificateError::io("writing", path, e)
    })
}

/// Makes renames in `dir` durable; best effort.
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certificate::pem::testing::self_signed;

    fn identity(cn: &str) -> Identity {
        let (cert, key) = self_signed(cn, &["system:nodes"]);
        Identity::from_pem(&cert, &key).unwrap()
    }

    #[test]
    fn update_writes_a_private_file_and_moves_the_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let store = CertificateStore::client(&dir);
        assert_eq!(
            store.current().unwrap().map(|i| i.certificate().clone()),
            None
        );

        let first = identity("system:node:a");
        let p1 = store.update(&first).unwrap();
        let name = p1.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with("kubelet-client-20") && name.ends_with(".pem"),
            "{name}"
        );
        assert_eq!(
            fs::metadata(&p1).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let link = dir.join("kubelet-client-current.pem");
        assert_eq!(fs::read_link(&link).unwrap(), PathBuf::from(&name));
        let current = store.current().unwrap().unwrap();
        assert_eq!(current.certificate(), first.certificate());
        assert_eq!(
            fs::read_to_string(&p1).unwrap(),
            first.to_file_pem().expose()
        );

        // A second update (possibly within the same second: same name,
        // replaced whole) moves the link to the new pair.
        let second = identity("system:node:a");
        let p2 = store.update(&second).unwrap();
        assert_eq!(
            fs::read_link(&link).unwrap(),
            PathBuf::from(p2.file_name().unwrap())
        );
        assert_eq!(
            store.current().unwrap().unwrap().certificate().serial,
            second.certificate().serial
        );
        assert!(!dir.join("kubelet-client-updated.pem").exists());
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_garbage_current_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = CertificateStore::server(tmp.path());
        fs::write(store.current_path(), "garbage").unwrap();
        let e = store.current().unwrap_err().to_string();
        assert!(e.contains("kubelet-server-current.pem"), "{e}");
        assert!(e.contains("no CERTIFICATE PEM block"), "{e}");
    }
}
