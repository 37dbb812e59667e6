# shellcheck shell=bash disable=SC2034 # the settings are used by up and down
# Shared settings and helpers for tests/env/up and tests/env/down.
# Sourced, not executed. Everything Berth's test environment owns lives
# under the paths below, so `down` can remove it without touching the host.

BERTH_ENV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BERTH_REPO="$(cd "$BERTH_ENV_DIR/../.." && pwd)"

CONF_DIR=/etc/berth-test
RUN_DIR=/run/berth-test
DATA_DIR=/var/lib/berth-test
LOG_DIR=/var/log/berth-test

CTRD_CONFIG="$CONF_DIR/containerd.toml"
CTRD_SOCK="$RUN_DIR/containerd.sock"
CTRD_ROOT="$DATA_DIR/containerd"
CTRD_STATE="$RUN_DIR/containerd"
CTRD_PIDFILE="$RUN_DIR/containerd.pid"
CTRD_LOG="$LOG_DIR/containerd.log"
# The CRI runtime's runc state; kept apart from /run/containerd/runc.
RUNC_ROOT="$RUN_DIR/runc"

CNI_CONF_DIR="$CONF_DIR/cni/net.d"
CNI_NETWORK=berth
CNI_BRIDGE=cni0
CNI_SUBNET=10.88.0.0/16

IMAGES_DIR="$DATA_DIR/images"
ENV_FILE="$RUN_DIR/env"

REGISTRY=localhost:5000
AUTH_REGISTRY=localhost:5001
AUTH_USER=berth
AUTH_PASS=berth-pass

log() { printf '[berth-env] %s\n' "$*" >&2; }
die() {
    printf '[berth-env] ERROR: %s\n' "$*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it starts containerd and manages mounts)"
}

# True if PID is alive (not a zombie) and its executable name is NAME.
pid_is() {
    local pid="$1" name="$2" comm stat
    [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [ "$comm" = "$name" ] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ]
}

# PID stored in FILE if that process is alive and named NAME.
pidfile_pid() {
    local file="$1" name="$2" pid
    [ -f "$file" ] || return 1
    pid="$(cat "$file" 2>/dev/null)" || return 1
    pid_is "$pid" "$name" || return 1
    printf '%s\n' "$pid"
}

# PIDs of all processes whose executable name is NAME (no procps needed).
pids_named() {
    local name="$1" p
    for p in /proc/[0-9]*; do
        p="${p#/proc/}"
        if pid_is "$p" "$name"; then printf '%s\n' "$p"; fi
    done
}

# The command line of PID with NULs turned into spaces.
cmdline_of() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# SIGTERM, wait up to TIMEOUT seconds, then SIGKILL.
stop_pid() {
    local pid="$1" timeout="${2:-10}" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < timeout * 10; i++)); do
        [ -d "/proc/$pid" ] || return 0
        # A zombie counts as gone; its parent may never reap it.
        pid_is "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)" || return 0
        sleep 0.1
    done
    log "pid $pid ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

ctr_() { ctr --address "$CTRD_SOCK" "$@"; }

# HTTP status of GET http://127.0.0.1:PORT/PATH using bash's /dev/tcp, so no
# curl is needed. Prints 000 when nothing answers. An optional third
# argument is a base64 "user:pass" for basic auth.
http_status() {
    local port="$1" path="$2" auth="${3:-}" line
    {
        exec 3<>"/dev/tcp/127.0.0.1/$port"
    } 2>/dev/null || {
        echo 000
        return 0
    }
    {
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\n' "$path" "$port"
        if [ -n "$auth" ]; then printf 'Authorization: Basic %s\r\n' "$auth"; fi
        printf '\r\n'
    } >&3
    if IFS=' ' read -r -t 5 _ line _ <&3; then
        printf '%s\n' "$line"
    else
        echo 000
    fi
    exec 3<&-
}

# Mount points at or below DIR, newest first (children before parents).
mounts_under() {
    local dir="$1"
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
        sed 's/\\040/ /g' | tac
}

unmount_under() {
    local dir="$1" m
    while IFS= read -r m; do
        [ -n "$m" ] || continue
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done < <(mounts_under "$dir")
}

# --- packages -------------------------------------------------------------------
# Every Debian package that tests/env/up, examples/run, examples/stop,
# tests/run, the end-to-end tests and the benchmarks call into, beyond the
# Essential set (bash, coreutils, grep, sed, util-linux, dpkg ...):
#   containerd (containerd, ctr), runc, containernetworking-plugins (bridge,
#   portmap, host-local, loopback in /usr/lib/cni), busybox-static (the busybox
#   image), docker-registry, skopeo, apache2-utils (htpasswd);
#   iproute2 and iptables (the CNI plugins, our route check, tests/env/down);
#   build-essential (cc: cargo links with it and builds ring's C code);
#   ca-certificates (cargo fetches crates over https);
#   procps (pgrep in examples/stop, kill in the e2e helpers);
#   curl and jq (examples/run --check, the README's commands);
#   mount (mount/umount; Priority required, but not Essential);
#   openssl (the control plane's certificates, tests/env/control-plane).
# The Rust toolchain is the one prerequisite apt does not provide (rustup).
PACKAGES=(containerd runc containernetworking-plugins busybox-static
    docker-registry skopeo apache2-utils iproute2 iptables
    build-essential ca-certificates procps curl jq mount openssl)

# Commands the scripts and tests run, each checked after install_packages
# (as executables: `kill` must exist as a program, not only as bash's builtin).
TOOLS=(containerd ctr runc skopeo docker-registry htpasswd busybox ip iptables
    iptables-save iptables-restore cc curl jq pgrep kill mount umount setsid)

# Installs whatever in PACKAGES is missing with apt-get; apt-get update runs
# only when something is missing.
install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    # Debian's containerd package may try to start the system containerd;
    # policy-rc.d 101 forbids that for the duration of the install.
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [ -e "$policy" ] && had_policy=1
    if [ "$had_policy" -eq 0 ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy"; fi
    local rc=0
    apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
    if [ "$had_policy" -eq 0 ]; then rm -f "$policy"; fi
    [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed (exit $rc)"
}

# Dies naming the first command or CNI plugin missing after install_packages,
# and says how to get cargo, which apt does not provide here.
check_tools() {
    local tool plugin
    for tool in "${TOOLS[@]}"; do
        type -P "$tool" >/dev/null || die "'$tool' not found in PATH after installing packages"
    done
    for plugin in bridge portmap loopback host-local; do
        [ -x "/usr/lib/cni/$plugin" ] ||
            die "CNI plugin /usr/lib/cni/$plugin missing (package containernetworking-plugins)"
    done
    command -v cargo >/dev/null ||
        die "cargo not found in PATH: install a Rust toolchain with rustup (https://rustup.rs) first, then rerun (see README.md, Quick start)"
}

# --- templates --------------------------------------------------------------------
# render TEMPLATE KEY=VALUE...: prints TEMPLATE with each @KEY@ replaced by VALUE.
render() {
    local text kv
    text="$(cat "$1")" || die "cannot read template $1"
    shift
    for kv in "$@"; do
        text="${text//@${kv%%=*}@/${kv#*=}}"
    done
    printf '%s\n' "$text"
}

# write_if_changed FILE CONTENT: writes FILE only if its content differs;
# returns 0 if it wrote, 1 if FILE was already up to date.
write_if_changed() {
    local file="$1" content="$2"
    if [ -f "$file" ] && [ "$(cat "$file")" = "$content" ]; then return 1; fi
    mkdir -p "$(dirname "$file")"
    printf '%s\n' "$content" >"$file.tmp"
    mv -f "$file.tmp" "$file"
    return 0
}

# Starts a daemon in the background with only stdin/stdout/stderr open. A
# descriptor inherited from the caller (e.g. the lock of `flock FILE
# tests/env/up`) would otherwise stay open, and held, for the daemon's life.
# Usage: spawn_daemon LOGFILE CMD ARGS... ; the daemon's pid is in $!.
spawn_daemon() {
    local logf="$1"
    shift
    (
        for fd in /proc/self/fd/*; do
            fd="${fd##*/}"
            if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid nohup "$@" </dev/null >>"$logf" 2>&1
    ) &
}

