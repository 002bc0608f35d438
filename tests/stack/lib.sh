# shellcheck shell=bash
# Shared by tests/stack/{up,status,down}: where the local stack lives, its ports and versions,
# and the process bookkeeping that lets the scripts stop only what they started.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_SRC="$ROOT/tests/stack"
# Runtime state of this checkout's stack: pid files, logs, data, certificates, the env file.
STACK_DIR=${PLINTH_STACK_DIR:-$ROOT/.stack}
# Build outputs shared by every checkout on the machine (CI runs in a fresh clone), keyed by
# the inputs that produced them so a change of version rebuilds.
CACHE_DIR=${PLINTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/plinth}

K8S_VERSION=v1.35.4
HELM_VERSION=v3.22.0
MARIADB_PORT=${PLINTH_MARIADB_PORT:-3306}
AWS_PORT=${PLINTH_AWS_PORT:-4566}
ETCD_PORT=${PLINTH_ETCD_PORT:-12379}
ETCD_PEER_PORT=${PLINTH_ETCD_PEER_PORT:-12380}
APISERVER_PORT=${PLINTH_APISERVER_PORT:-16443}
# kube-controller-manager serves only its health endpoints there.
CONTROLLER_MANAGER_PORT=${PLINTH_CONTROLLER_MANAGER_PORT:-16257}
CONTROLLER_MANAGER_CONTROLLERS=namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller
DB_USER=plinth
DB_PASSWORD=plinth
# The shared emulator's data plane: alarm periods, cooldowns and health-check timings run this
# much faster than AWS's (0.1: a one-minute alarm period lasts 6 s).
DATA_PLANE_TIME_SCALE=${PLINTH_DATA_PLANE_TIME_SCALE:-0.1}

RUN_DIR="$STACK_DIR/run"
LOG_DIR="$STACK_DIR/logs"
ENV_FILE="$STACK_DIR/env"

say() { printf '[stack] %s\n' "$*"; }
fail() {
	printf '[stack] error: %s\n' "$*" >&2
	exit 1
}

# Runs a long step quietly; on failure prints the step's name and the tail of its log, not a
# trace of this script.
step() {
	local name=$1 log=$2
	shift 2
	mkdir -p "$(dirname "$log")"
	if ! "$@" >"$log" 2>&1; then
		printf '[stack] error: %s failed; last lines of %s:\n' "$name" "$log" >&2
		tail -n 25 "$log" >&2
		exit 1
	fi
}

hash_files() { cat "$@" | sha256sum | cut -c1-12; }

k8s_bin_dir() { echo "$CACHE_DIR/k8s-$K8S_VERSION-$(hash_files "$STACK_SRC/k8s/go.mod" "$STACK_SRC/k8s/go.sum")"; }
helm_bin_dir() { echo "$CACHE_DIR/helm-$HELM_VERSION"; }
venv_dir() { echo "$CACHE_DIR/venv-$(hash_files "$STACK_SRC/aws/requirements.txt")"; }

# The pid recorded for a component, if that process is still alive.
running_pid() {
	local pidfile="$RUN_DIR/$1.pid" pid
	[[ -f $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

port_in_use() { [[ -n $(ss -ltnH "sport = :$1" 2>/dev/null) ]]; }

port_holder() {
	local line
	line=$(ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1)
	echo "${line:-an unknown process}"
}

# Refuses to start a component whose port is held by a process this stack did not start.
require_free_port() {
	local component=$1 port=$2
	if port_in_use "$port"; then
		fail "port $port (for $component) is already in use by $(port_holder "$port"), which this stack did not start; stop it or set PLINTH_${component^^}_PORT, then run tests/stack/up again"
	fi
}

# Starts a command in its own session so `down` can stop it and all its children.
spawn() {
	local name=$1
	shift
	mkdir -p "$RUN_DIR" "$LOG_DIR"
	setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
	echo $! >"$RUN_DIR/$name.pid"
}

wait_until() {
	local what=$1 seconds=$2 log=$3
	shift 3
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			printf '[stack] error: %s did not become healthy within %ss; last lines of %s:\n' "$what" "$seconds" "$log" >&2
			tail -n 25 "$log" >&2
			exit 1
		fi
		sleep 0.5
	done
}

stop_component() {
	local name=$1 seconds=${2:-10} pid
	if pid=$(running_pid "$name"); then
		# The component runs in its own session (setsid): signal the whole group.
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 $((seconds * 4))); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		kill -KILL -- "-$pid" 2>/dev/null || true
		say "$name stopped (pid $pid)"
	fi
	rm -f "$RUN_DIR/$name.pid"
}

mariadb_client() { mariadb --protocol=tcp -h 127.0.0.1 -P "$MARIADB_PORT" -u "$DB_USER" -p"$DB_PASSWORD" "$@"; }
mariadb_healthy() { mariadb_client -N -e 'SELECT 1' >/dev/null 2>&1; }
aws_healthy() { curl -fsS "http://127.0.0.1:$AWS_PORT/_plinth/health" >/dev/null 2>&1; }
etcd_healthy() { curl -fsS "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'; }
controller_manager_healthy() { curl -fsSk "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz" >/dev/null 2>&1; }
apiserver_healthy() { "$(k8s_bin_dir)/kubectl" --kubeconfig "$STACK_DIR/kubeconfig" get --raw /readyz >/dev/null 2>&1; }
