//! Runs the real `pause` binary and checks its signal contract.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const PAUSE: &str = env!("CARGO_BIN_EXE_pause");

/// Kills the process if a test fails half-way, so no stray `pause` keeps
/// the test's output pipes open.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(Instant::now() < deadline, "pause did not exit in time");
        sleep(Duration::from_millis(20));
    }
}

fn pid_of(child: &std::process::Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap())
}

#[test]
fn version_flag_prints_version() {
    let out = Command::new(PAUSE).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("pause (berth) "), "{text}");
}

#[test]
fn unknown_argument_is_rejected() {
    let out = Command::new(PAUSE).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut guard = Reaper(Command::new(PAUSE).spawn().unwrap());
        let child = &mut guard.0;
        // Give it time to block signals; an early signal would kill it with
        // the default action and the status check below would catch that.
        sleep(Duration::from_millis(200));
        kill(pid_of(child), sig).unwrap();
        let st = wait_exit(child);
        assert_eq!(st.code(), Some(0), "{sig}: {st:?}");
    }
}

#[test]
fn sigchld_without_children_keeps_running() {
    let mut guard = Reaper(Command::new(PAUSE).spawn().unwrap());
    let child = &mut guard.0;
    sleep(Duration::from_millis(200));
    // SIGCHLD with no children must not end the process.
    kill(pid_of(child), Signal::SIGCHLD).unwrap();
    sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "pause exited on SIGCHLD"
    );
    kill(pid_of(child), Signal::SIGTERM).unwrap();
    assert_eq!(wait_exit(child).code(), Some(0));
}

/// The shell starts a short-lived child and then execs pause, so pause
/// inherits that child and must reap it when it exits.
#[test]
fn reaps_inherited_children() {
    let script = format!("sleep 0.3 & echo $!; exec {PAUSE}");
    let mut guard = Reaper(
        Command::new("/bin/sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let grandchild: i32 = line.trim().parse().unwrap();
    let stat = format!("/proc/{grandchild}/stat");

    // Until reaped, the exited child shows up as state Z in /proc.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(s) = std::fs::read_to_string(&stat) {
        assert!(
            Instant::now() < deadline,
            "child {grandchild} not reaped: {s}"
        );
        sleep(Duration::from_millis(20));
    }
    kill(pid_of(child), Signal::SIGTERM).unwrap();
    assert_eq!(wait_exit(child).code(), Some(0));
}
