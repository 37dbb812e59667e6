//! `pause`: the first process of every pod sandbox.
//!
//! A pod's containers share some Linux namespaces (network, IPC, UTS and,
//! optionally, PID). Those namespaces live only as long as some process is
//! in them, so the runtime starts this tiny program first and keeps it
//! running for the pod's lifetime. App containers join its namespaces and
//! can crash and restart without the pod losing its IP address or IPC state.
//!
//! When the pod shares one PID namespace, `pause` is its PID 1: orphaned
//! processes are re-parented to it, so it must reap them or they stay
//! zombies forever. Otherwise it just sleeps.
//!
//! Behaviour matches the upstream Kubernetes pause container: SIGTERM and
//! SIGINT end it with status 0, SIGCHLD reaps every exited child. Unlike
//! upstream it waits with `sigwait` instead of signal handlers, which keeps
//! the program free of `unsafe`.

use std::process::ExitCode;

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None => {}
        Some("--version" | "-v") => {
            println!("pause (berth) {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("pause: unexpected argument {other:?} (only --version is accepted)");
            return ExitCode::from(2);
        }
    }

    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    set.add(Signal::SIGCHLD);
    // Blocked signals stay pending until sigwait picks them up, so nothing
    // is lost between two waits.
    if let Err(e) = set.thread_block() {
        eprintln!("pause: cannot block signals: {e}");
        return ExitCode::FAILURE;
    }

    loop {
        match set.wait() {
            Ok(Signal::SIGTERM | Signal::SIGINT) => return ExitCode::SUCCESS,
            Ok(Signal::SIGCHLD) => reap_zombies(),
            Ok(_) => {}
            Err(e) => {
                eprintln!("pause: sigwait failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// Collects every child that has exited. One SIGCHLD may stand for several
/// exits (standard signals do not queue), hence the loop.
fn reap_zombies() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                eprintln!("pause: waitpid failed: {e}");
                return;
            }
        }
    }
}
