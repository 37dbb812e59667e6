//! Following a log file: noticing rotation (rename-and-create and
//! copytruncate) and sleeping until the file's directory changes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

use super::LogError;
use super::read::Source;

/// With inotify, look at the file anyway this often, in case an event was
/// missed (the Go reader does the same every second).
const FORCE_CHECK: Duration = Duration::from_secs(1);
/// Without inotify, poll the file this often.
const POLL: Duration = Duration::from_millis(250);

pub(super) enum Rotation {
    Same,
    /// The file shrank below what we have read: copytruncate.
    Truncated,
    /// The path now names another file: rename-and-create.
    Replaced,
}

impl Source {
    pub(super) async fn restart(&mut self) -> Result<(), LogError> {
        if !self.pending.is_empty() {
            tracing::debug!(path = %self.path.display(), bytes = self.pending.len(), "dropping an unterminated record cut off by truncation");
        }
        self.seek_to(0).await
    }

    pub(super) async fn check_rotation(&mut self) -> Result<Rotation, LogError> {
        let ours = self.file.metadata().await.map_err(|e| self.err(e))?;
        if ours.len() < self.pos {
            return Ok(Rotation::Truncated);
        }
        match tokio::fs::metadata(&self.path).await {
            Ok(now) if (now.dev(), now.ino()) != (ours.dev(), ours.ino()) => Ok(Rotation::Replaced),
            Ok(_) => Ok(Rotation::Same),
            // Renamed away and not yet recreated: keep reading the old file,
            // the runtime still writes to it until it reopens the log.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Rotation::Same),
            Err(e) => {
                tracing::debug!(path = %self.path.display(), "cannot stat log file: {e}");
                Ok(Rotation::Same)
            }
        }
    }

    /// Switch to the file now at `path`. False if it vanished meanwhile.
    pub(super) async fn reopen(&mut self) -> Result<bool, LogError> {
        match tokio::fs::File::open(&self.path).await {
            Ok(file) => {
                self.file = file;
                self.pos = 0;
                self.pending.clear();
                self.discarding = false;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }
}

/// inotify on the log's directory: reports writes, truncation, renames and
/// the creation of the new file, for the file and whatever replaces it.
pub(super) struct Watcher {
    fd: AsyncFd<InotifyFd>,
}

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Watcher {
    /// None (and polling instead) when inotify is unavailable, e.g. the
    /// user's inotify instances are used up; following must still work.
    pub(super) fn new(file: &Path) -> Option<Self> {
        match Self::try_new(file) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!("{e}; polling every {POLL:?} instead");
                None
            }
        }
    }

    fn try_new(file: &Path) -> Result<Self, LogError> {
        let dir = file.parent().unwrap_or(Path::new("/")).to_owned();
        let watch_err = |source| LogError::Watch {
            path: dir.clone(),
            source,
        };
        let ino =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(watch_err)?;
        ino.add_watch(
            &dir,
            AddWatchFlags::IN_MODIFY
                | AddWatchFlags::IN_ATTRIB
                | AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_CLOSE_WRITE,
        )
        .map_err(watch_err)?;
        // `AsyncFd::register` (unsafe) only asks that the fd stay open and
        // unchanged while registered; InotifyFd owns it and never swaps it, so
        // the safe, deprecated constructor is sound here and keeps this
        // crate free of `unsafe`.
        #[allow(deprecated)]
        let registered = AsyncFd::new(InotifyFd(ino));
        let fd = registered.map_err(|e| LogError::Watch {
            path: dir.clone(),
            source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
        })?;
        Ok(Watcher { fd })
    }

    /// Wait until something happens in the directory, then drain the queue
    /// (the caller re-examines the file anyway, so the events' details do
    /// not matter).
    async fn changed(&self) -> Result<(), Errno> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
            let mut any = false;
            loop {
                match guard.get_inner().0.read_events() {
                    Ok(events) => any |= !events.is_empty(),
                    Err(Errno::EAGAIN) => {
                        guard.clear_ready();
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if any {
                return Ok(());
            }
        }
    }
}

pub(super) async fn wait_for_change(watcher: Option<&Watcher>, path: &Path) {
    match watcher {
        Some(w) => {
            tokio::select! {
                r = w.changed() => {
                    if let Err(e) = r {
                        tracing::debug!(path = %path.display(), "inotify read failed: {}", e.desc());
                        tokio::time::sleep(POLL).await;
                    }
                }
                () = tokio::time::sleep(FORCE_CHECK) => {}
            }
        }
        None => tokio::time::sleep(POLL).await,
    }
}
