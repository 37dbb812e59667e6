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
