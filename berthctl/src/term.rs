//! The local terminal for `exec -t` / `attach -t`: raw mode while the
//! session runs, the window size, and SIGWINCH-driven resize events.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use cri_client::stream::TermSize;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// Keeps a terminal in raw mode and puts the saved settings back on drop,
/// so every exit path (errors and panics included) restores the terminal.
pub struct RawModeGuard {
    fd: OwnedFd,
    saved: Termios,
}

impl RawModeGuard {
    /// Puts stdin's terminal into raw mode: keys go to the remote side
    /// unprocessed, as kubectl and crictl do for `-t`.
    pub fn new() -> io::Result<Self> {
        Self::on(io::stdin())
    }

    /// Raw mode on any terminal fd. The fd is duplicated so the guard does
    /// not depend on the caller keeping it open.
    pub fn on(fd: impl AsFd) -> io::Result<Self> {
        let fd = fd.as_fd().try_clone_to_owned()?;
        let saved =
            termios::tcgetattr(&fd).map_err(|e| term_error("reading terminal settings", e))?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&fd, SetArg::TCSANOW, &raw)
            .map_err(|e| term_error("entering raw mode", e))?;
        Ok(RawModeGuard { fd, saved })
    }
}

impl Drop for RawModeGuard {
    fn drop(&mut self) {
        // TCSADRAIN lets pending output reach the screen before echo returns.
        if let Err(e) = termios::tcsetattr(&self.fd, SetArg::TCSADRAIN, &self.saved) {
            tracing::warn!(error = %e, "restoring terminal settings");
        }
    }
}

fn term_error(what: &str, e: nix::Error) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what} on stdin: {e}"))
}

/// The size of the terminal on stdout, falling back to stdin; None when
/// neither is a terminal or the size is unknown (0x0).
pub fn terminal_size() -> Option<TermSize> {
    terminal_size_of(io::stdout()).or_else(|| terminal_size_of(io::stdin()))
}

/// The window size of the terminal behind `fd`.
pub fn terminal_size_of(fd: impl AsFd) -> Option<TermSize> {
    let ws = rustix::termios::tcgetwinsize(fd).ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some(TermSize {
        width: ws.ws_col,
        height: ws.ws_row,
    })
}

/// Sends the current size, then a new one on every SIGWINCH that changes
/// it (kubectl's size queue also drops repeats). The task ends once the
/// receiver is dropped and the next signal arrives.
pub fn watch_resize() -> mpsc::Receiver<TermSize> {
    let (tx, rx) = mpsc::channel(4);
    let winch = signal(SignalKind::window_change());
    tokio::spawn(async move {
        let mut last = terminal_size();
        if let Some(size) = last
            && tx.send(size).await.is_err()
        {
            return;
        }
        let mut winch = match winch {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "watching SIGWINCH; the remote terminal will not follow resizes");
                return;
            }
        };
        while winch.recv().await.is_some() {
            let size = terminal_size();
            if size.is_none() || size == last {
                continue;
            }
            last = size;
            if let Some(size) = size
                && tx.send(size).await.is_err()
            {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use nix::pty::{Winsize, openpty};
    use nix::sys::termios::{LocalFlags, tcgetattr};

    use super::*;

    #[test]
    fn raw_mode_is_entered_and_restored() {
        let pty = openpty(None, None).unwrap();
        let before = tcgetattr(&pty.slave).unwrap();
        assert!(
            before
                .local_flags
                .contains(LocalFlags::ICANON | LocalFlags::ECHO)
        );
        {
            let _guard = RawModeGuard::on(&pty.slave).unwrap();
            let raw = tcgetattr(&pty.slave).unwrap();
            assert!(
                !raw.local_flags
                    .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
            );
        }
        let after = tcgetattr(&pty.slave).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
        assert_eq!(after.input_flags, before.input_flags);
        assert_eq!(after.output_flags, before.output_flags);
    }

    #[test]
    fn raw_mode_on_a_non_terminal_is_an_error() {
        let file = tempfile::tempfile().unwrap();
        let err = RawModeGuard::on(&file).err().unwrap();
        assert!(
            err.to_string().contains("reading terminal settings"),
            "{err}"
        );
    }

    #[test]
    fn size_comes_from_the_terminal() {
        let ws = Winsize {
            ws_row: 40,
            ws_col: 132,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&ws), None).unwrap();
        assert_eq!(
            terminal_size_of(&pty.slave),
            Some(TermSize {
                width: 132,
                height: 40
            })
        );
        let file = tempfile::tempfile().unwrap();
        assert_eq!(terminal_size_of(&file), None);
    }
}
