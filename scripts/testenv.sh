#!/usr/bin/env bash
# testenv.sh - install, start and describe the integration test environment.
#
# Everything listens on loopback only:
#   buildkitd      unix:///run/imagebuilder/buildkitd.sock (OCI worker, runc, qemu binfmt)
#   dockerd        unix:///var/run/docker.sock (Debian docker.io, --bridge=none --iptables=false)
#   registry       127.0.0.1:5000 (no auth) and 127.0.0.1:5001 (htpasswd), deletes enabled
#   base images    {5000,5001}/base/busybox:latest and base/alt:latest (linux/amd64 + linux/arm64)
#   sshd           127.0.0.1:2222, root by key only ($STATE_DIR/ssh/id_ed25519): remote Ansible
#                  runs, TOSCA Compute hosts and DOCKER_HOST=ssh:// go through it
#   postgresql     127.0.0.1:5432 (Debian's cluster), role and database imagebuilder (password,
#                  CREATEDB: tests make a database each): imagebuilder serve's shared queue
#   virtualenvs    ansible-core, and opera 0.7.0 (+ ansible-core) in its own venv; Ansible's
#                  gates (ansible-test's sanity venvs, ansible-lint, galaxy-importer) in a third;
#                  schemathesis (the API fuzzer run against imagebuilder serve) in a fourth
#
# Usage: scripts/testenv.sh up|down|env|status|restart-buildkitd|kill-buildkitd
#   up                 install what is missing and start what is not running (idempotent)
#   down               stop the services this script started (caches and data are kept)
#   env                print `export VAR=...` lines; use: eval "$(scripts/testenv.sh env)"
#   status             report what is running (exit 1 when something is down)
#   restart-buildkitd  (re)start buildkitd only, e.g. after a test killed it
#   kill-buildkitd     SIGKILL buildkitd (tests of what a dead engine does to a build)
#
# Must run as root. Caches (buildkit binaries, busybox, venvs) live in
# ${IMAGEBUILDER_CACHE:-$HOME/.cache/imagebuilder}; service state in /var/lib/imagebuilder,
# logs in /var/log/imagebuilder, sockets and pid files in /run/imagebuilder.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

BUILDKIT_MODULE=github.com/moby/buildkit
BUILDKIT_VERSION=v0.34.2
ANSIBLE_SPEC='ansible-core>=2.16,<2.20'
# Ansible's own gates on the collection (scripts/ansible-gates.sh), in a virtualenv of their own.
GATES_SPECS=("$ANSIBLE_SPEC" 'ansible-lint==26.10.1' 'galaxy-importer==0.4.44')
OPERA_SPEC='opera==0.7.0'
OPERA_CONSTRAINTS=$'cython<3\nsetuptools<82'
# The property-based API fuzzer run against imagebuilder serve's OpenAPI document, in its own venv.
SCHEMATHESIS_SPEC='schemathesis==4.32.5'

CACHE=${IMAGEBUILDER_CACHE:-${HOME:-/root}/.cache/imagebuilder}
BIN_DIR=$CACHE/bin
BUSYBOX_DIR=$CACHE/busybox
VENV_ANSIBLE=$CACHE/venv-ansible
VENV_OPERA=$CACHE/venv-opera
VENV_GATES=$CACHE/venv-ansible-gates
VENV_SCHEMATHESIS=$CACHE/venv-schemathesis

STATE_DIR=/var/lib/imagebuilder
RUN_DIR=/run/imagebuilder
LOG_DIR=/var/log/imagebuilder

BUILDKIT_SOCK=$RUN_DIR/buildkitd.sock
BUILDKIT_ADDR=unix://$BUILDKIT_SOCK
BUILDKIT_PIDFILE=$RUN_DIR/buildkitd.pid
BUILDKIT_CONFIG=$STATE_DIR/buildkitd.toml

DOCKER_SOCK=/var/run/docker.sock
DOCKER_ADDR=unix://$DOCKER_SOCK
DOCKER_PIDFILE=$RUN_DIR/dockerd.pid
DOCKER_CONFIG=$STATE_DIR/docker-daemon.json
DOCKER_DRIVER_FILE=$STATE_DIR/docker-storage-driver

REGISTRY=127.0.0.1:5000
AUTH_REGISTRY=127.0.0.1:5001
AUTH_USER=imagebuilder
AUTH_PASSWORD_FILE=$STATE_DIR/registry-5001.password
AUTH_HTPASSWD=$STATE_DIR/registry-5001.htpasswd
REGISTRY_SECRET_FILE=$STATE_DIR/registry-http-secret

SSH_PORT=2222
SSH_DIR=$STATE_DIR/ssh
SSH_CONFIG=$SSH_DIR/sshd_config
SSH_PIDFILE=$RUN_DIR/sshd.pid
SSH_KEY=$SSH_DIR/id_ed25519
# Makes `ssh root@127.0.0.1 -p 2222` (and DOCKER_HOST=ssh://root@127.0.0.1:2222) use the test key
# and trust the test host key, for every program that runs the system's ssh client.
SSH_CLIENT_CONFIG=/etc/ssh/ssh_config.d/imagebuilder-test.conf

POSTGRES_PORT=5432
POSTGRES_USER=imagebuilder
POSTGRES_PASSWORD_FILE=$STATE_DIR/postgres.password

APT_PACKAGES=(docker.io docker-registry runc qemu-user-static binfmt-support busybox-static
	apache2-utils git iproute2 python3-venv ca-certificates openssh-server openssh-client sudo graphviz
	protobuf-compiler buildah postgresql
	chromium systemd)

log() { printf '[testenv %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

# timed NAME CMD...: runs CMD and logs how long it took.
timed() {
	local name=$1 start=$SECONDS
	shift
	"$@"
	log "$name: done in $((SECONDS - start))s"
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

find_go() {
	if ! command -v go >/dev/null 2>&1; then
		[[ -x /usr/local/go/bin/go ]] || die "the Go toolchain is required (go not in PATH nor /usr/local/go/bin)"
		PATH=/usr/local/go/bin:$PATH
	fi
}

# docker_cli runs the Debian docker client, which matches the Debian daemon's API.
docker_cli() {
	local cli=/usr/bin/docker
	[[ -x $cli ]] || cli=docker
	DOCKER_HOST=$DOCKER_ADDR "$cli" "$@"
}

buildctl_cli() { "$BIN_DIR/buildctl" --addr "$BUILDKIT_ADDR" "$@"; }

# pid_of PIDFILE COMM: prints the pid from PIDFILE if that process is alive and named COMM.
pid_of() {
	local pidfile=$1 comm=$2 pid
	[[ -s $pidfile ]] || return 1
	pid=$(<"$pidfile")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[[ -r /proc/$pid/comm && $(<"/proc/$pid/comm") == "$comm"* ]] || return 1
	printf '%s\n' "$pid"
}

# stop_pid PIDFILE COMM NAME: TERM, wait up to 30s, then KILL.
stop_pid() {
	local pidfile=$1 comm=$2 name=$3 pid i
	if ! pid=$(pid_of "$pidfile" "$comm"); then
		rm -f "$pidfile"
		return 0
	fi
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 300; i++)); do
		[[ -d /proc/$pid ]] || break
		sleep 0.1
	done
	if [[ -d /proc/$pid ]]; then
		log "$name did not stop in 30s, killing it"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$pidfile"
}

# spawn PIDFILE LOGFILE CMD...: starts CMD detached in its own session; writes its pid.
spawn() {
	local pidfile=$1 logfile=$2
	shift 2
	printf '\n=== %(%F %T)T starting: %s\n' -1 "$*" >>"$logfile"
	# fd 9 holds the script's lock; a daemon inheriting it would hold the lock forever.
	setsid "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
	local pid=$!
	[[ -n $pidfile ]] && printf '%s\n' "$pid" >"$pidfile"
	SPAWNED_PID=$pid
}

# http_status HOST PORT PATH: prints the HTTP status code of a GET (no curl needed).
http_status() (
	exec 3<>"/dev/tcp/$1/$2" || exit 1
	printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n' "$3" "$1" "$2" >&3
	IFS=' ' read -r -t 5 _ code _ <&3 || exit 1
	printf '%s\n' "$code"
) 2>/dev/null

port_in_use() { [[ -n $(ss -ltnH "sport = :$1" 2>/dev/null) ]]; }

# write_if_changed FILE MODE: writes stdin to FILE; returns 0 if the content changed.
write_if_changed() {
	local file=$1 mode=$2 tmp
	tmp=$(mktemp "$file.XXXXXX")
	cat >"$tmp"
	chmod "$mode" "$tmp"
	if [[ -f $file ]] && cmp -s "$tmp" "$file"; then
		rm -f "$tmp"
		return 1
	fi
	mv -f "$tmp" "$file"
	return 0
}

random_secret() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | cut -c1-32; }

make_dirs() {
	mkdir -p "$STATE_DIR" "$RUN_DIR" "$LOG_DIR" "$BIN_DIR" "$BUSYBOX_DIR"
	chmod 0755 "$STATE_DIR" "$RUN_DIR" "$LOG_DIR"
}

lock() {
	exec 9>"$RUN_DIR/testenv.lock"
	flock 9
}

# ---------------------------------------------------------------------------- apt

APT_UPDATED=0
apt_update() {
	((APT_UPDATED)) && return 0
	log "apt-get update"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
	APT_UPDATED=1
}

apt_lists_present() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

ensure_apt() {
	local missing=() p created_policy=0
	for p in "${APT_PACKAGES[@]}"; do
		installed "$p" || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		log "apt: all packages present"
		return 0
	fi
	log "apt: installing ${missing[*]}"
	apt_lists_present || apt_update
	# Keep the packages' init scripts from starting a default dockerd (with a docker0 bridge
	# and iptables rules) or a registry on :5000; this script starts its own instances.
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		created_policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || rc=$?
	if ((rc != 0 && APT_UPDATED == 0)); then
		apt_update
		rc=0
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 || rc=$?
	fi
	((created_policy)) && rm -f /usr/sbin/policy-rc.d
	((rc == 0)) || die "apt-get install failed"
}

# On machines running systemd the packages' own units may hold our ports and sockets.
stop_system_units() {
	[[ -d /run/systemd/system ]] || return 0
	local u
	for u in docker-registry.service docker.service docker.socket; do
		if systemctl is-active --quiet "$u" 2>/dev/null; then
			log "stopping system unit $u (it conflicts with the test services)"
			systemctl stop "$u" || true
		fi
	done
}

# ------------------------------------------------------------------------ busybox

busybox_arch_for_host() {
	case $(uname -m) in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) die "unsupported host architecture $(uname -m)" ;;
	esac
}

ensure_busybox() {
	local arch need=() tmp deb
	for arch in amd64 arm64; do
		[[ -x $BUSYBOX_DIR/$arch/bin/busybox ]] || need+=("$arch")
	done
	if ((${#need[@]})); then
		if [[ $(dpkg --print-architecture) != arm64 ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
			log "dpkg --add-architecture arm64"
			dpkg --add-architecture arm64
			APT_UPDATED=0
			apt_update
		fi
		tmp=$(mktemp -d)
		chmod 0755 "$tmp"
		# apt's download sandbox runs as _apt, which must be able to write here.
		if id _apt >/dev/null 2>&1; then chown _apt "$tmp"; fi
		for arch in "${need[@]}"; do
			log "downloading busybox-static:$arch"
			if ! (cd "$tmp" && apt-get download -q "busybox-static:$arch" >&2); then
				apt_update
				(cd "$tmp" && apt-get download -q "busybox-static:$arch" >&2) || die "apt-get download busybox-static:$arch failed"
			fi
			deb=$(compgen -G "$tmp/busybox-static_*_$arch.deb" | sed -n 1p)
			rm -rf "${BUSYBOX_DIR:?}/$arch"
			mkdir -p "$BUSYBOX_DIR/$arch"
			dpkg-deb -x "$deb" "$BUSYBOX_DIR/$arch"
			dpkg-deb -f "$deb" Version >"$BUSYBOX_DIR/$arch/VERSION"
		done
		rm -rf "$tmp"
	fi
	local host
	host=$(busybox_arch_for_host)
	if [[ ! -s $BUSYBOX_DIR/applets.txt ]]; then
		"$BUSYBOX_DIR/$host/bin/busybox" --list-full >"$BUSYBOX_DIR/applets.txt"
	fi
	log "busybox: $(<"$BUSYBOX_DIR/amd64/VERSION") (amd64, arm64)"
}

# ------------------------------------------------------------------------- binfmt

ensure_binfmt() {
	local bm=/proc/sys/fs/binfmt_misc
	if ! mountpoint -q "$bm"; then
		log "mounting binfmt_misc"
		mount -t binfmt_misc binfmt_misc "$bm"
	fi
	if [[ ! -e $bm/qemu-aarch64 ]]; then
		log "update-binfmts --enable"
		update-binfmts --enable >&2 || true
	fi
	[[ -e $bm/qemu-aarch64 ]] || die "qemu-aarch64 is not registered in binfmt_misc"
	if ! grep -q '^flags:.*F' "$bm/qemu-aarch64"; then
		# Registered without the fix-binary flag (by something else): the interpreter would be
		# looked up inside each container's root file system. Re-register Debian's entry.
		log "qemu-aarch64 lacks the F flag; re-registering"
		echo -1 >"$bm/qemu-aarch64"
		update-binfmts --enable qemu-aarch64 >&2
		grep -q '^flags:.*F' "$bm/qemu-aarch64" || die "qemu-aarch64 registered without the F flag"
	fi
	local arch_bb=$BUSYBOX_DIR/arm64/bin/busybox out
	if [[ -x $arch_bb ]]; then
		out=$("$arch_bb" uname -m 2>&1) || die "running the arm64 busybox failed: $out"
		[[ $out == aarch64 ]] || die "arm64 busybox reported machine '$out'"
	fi
	log "binfmt: qemu-aarch64 enabled ($(sed -n 's/^flags: //p' "$bm/qemu-aarch64")), arm64 binaries run"
}

# ----------------------------------------------------------------------- buildkit

buildkit_binaries_ok() {
	local b
	for b in buildkitd buildctl; do
		[[ -x $BIN_DIR/$b ]] || return 1
		[[ $("$BIN_DIR/$b" --version 2>/dev/null) == "$b $BUILDKIT_MODULE $BUILDKIT_VERSION "* ]] || return 1
	done
}

ensure_buildkit_binaries() {
	if buildkit_binaries_ok; then
		log "buildkit: $BUILDKIT_VERSION binaries cached in $BIN_DIR"
		return 0
	fi
	find_go
	log "buildkit: building buildkitd and buildctl $BUILDKIT_VERSION (several minutes the first time)"
	local tmp dir
	tmp=$(mktemp -d)
	# `go install pkg@version` refuses buildkit's go.mod (exclude directives), so build the
	# module as the main module from a writable copy of the module cache.
	dir=$(cd "$tmp" && GOWORK=off GOFLAGS='' go mod download -json "$BUILDKIT_MODULE@$BUILDKIT_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
	[[ -n $dir && -d $dir ]] || die "go mod download $BUILDKIT_MODULE@$BUILDKIT_VERSION failed"
	cp -r "$dir" "$tmp/src"
	chmod -R u+w "$tmp/src"
	(cd "$tmp/src" && GOWORK=off GOFLAGS='' CGO_ENABLED=0 go build -mod=mod -trimpath \
		-ldflags "-s -w -X $BUILDKIT_MODULE/version.Version=$BUILDKIT_VERSION -X $BUILDKIT_MODULE/version.Revision=$BUILDKIT_VERSION" \
		-o "$tmp/bin/" ./cmd/buildkitd ./cmd/buildctl) >&2 ||
		die "building buildkit failed (temp dir $tmp kept)"
	install -m 0755 "$tmp/bin/buildkitd" "$BIN_DIR/buildkitd.new"
	install -m 0755 "$tmp/bin/buildctl" "$BIN_DIR/buildctl.new"
	mv -f "$BIN_DIR/buildkitd.new" "$BIN_DIR/buildkitd"
	mv -f "$BIN_DIR/buildctl.new" "$BIN_DIR/buildctl"
	rm -rf "$tmp"
	buildkit_binaries_ok || die "built buildkit binaries do not report $BUILDKIT_VERSION"
}

write_buildkit_config() {
	write_if_changed "$BUILDKIT_CONFIG" 0644 <<EOF
# Written by scripts/testenv.sh; edits are overwritten.
root = "$STATE_DIR/buildkit"
insecure-entitlements = ["network.host", "security.insecure"]

[grpc]
  address = ["$BUILDKIT_ADDR"]

[worker.oci]
  enabled = true
  gc = true
  gckeepstorage = "10GB"

[worker.containerd]
  enabled = false

[registry."$REGISTRY"]
  http = true

[registry."$AUTH_REGISTRY"]
  http = true
EOF
}

buildkit_platforms() {
	local out line
	out=$(buildctl_cli --timeout 5 debug workers -v 2>/dev/null) || return 1
	while IFS= read -r line; do
		if [[ $line =~ ^Platforms:[[:space:]]*(.*)$ ]]; then
			printf '%s\n' "${BASH_REMATCH[1]}"
			return 0
		fi
	done <<<"$out"
	return 1
}

start_buildkitd() {
	local changed=0 pid platforms i
	write_buildkit_config && changed=1
	if pid=$(pid_of "$BUILDKIT_PIDFILE" buildkitd); then
		platforms=$(buildkit_platforms || true)
		if ((changed == 0)) && [[ ,$platforms, == *,linux/arm64,* ]]; then
			log "buildkitd: running (pid $pid), platforms $platforms"
			return 0
		fi
		log "buildkitd: restarting (config changed or linux/arm64 missing: '$platforms')"
		stop_pid "$BUILDKIT_PIDFILE" buildkitd buildkitd
	elif [[ -S $BUILDKIT_SOCK ]] && "$BIN_DIR/buildctl" --addr "$BUILDKIT_ADDR" --timeout 2 debug workers >/dev/null 2>&1; then
		die "a buildkitd not started by this script serves $BUILDKIT_SOCK"
	fi
	mkdir -p "$STATE_DIR/buildkit"
	rm -f "$BUILDKIT_SOCK"
	spawn "$BUILDKIT_PIDFILE" "$LOG_DIR/buildkitd.log" \
		"$BIN_DIR/buildkitd" --config "$BUILDKIT_CONFIG" \
		--oci-worker=true --containerd-worker=false
	pid=$SPAWNED_PID
	for ((i = 0; i < 600; i++)); do
		[[ -d /proc/$pid ]] || { tail -n 30 "$LOG_DIR/buildkitd.log" >&2; die "buildkitd exited; see $LOG_DIR/buildkitd.log"; }
		if buildctl_cli --timeout 2 debug workers >/dev/null 2>&1; then
			break
		fi
		sleep 0.1
	done
	platforms=$(buildkit_platforms || true)
	[[ -n $platforms ]] || die "buildkitd did not answer within 60s; see $LOG_DIR/buildkitd.log"
	[[ ,$platforms, == *,linux/arm64,* ]] || die "buildkitd worker lacks linux/arm64 (platforms: $platforms); is qemu binfmt enabled?"
	log "buildkitd: started (pid $pid), platforms $platforms"
}

# ------------------------------------------------------------------------- dockerd

write_docker_config() {
	write_if_changed "$DOCKER_CONFIG" 0644 <<'EOF'
{
  "features": { "buildkit": true }
}
EOF
}

docker_answers() { docker_cli version >/dev/null 2>&1; }

# try_dockerd DRIVER: starts dockerd with DRIVER; returns 1 if it exits during startup.
try_dockerd() {
	local driver=$1 pid i
	mkdir -p "$STATE_DIR/docker" "$RUN_DIR/docker"
	rm -f "$DOCKER_PIDFILE"
	spawn "" "$LOG_DIR/dockerd.log" \
		dockerd --host "$DOCKER_ADDR" --config-file "$DOCKER_CONFIG" \
		--data-root "$STATE_DIR/docker" --exec-root "$RUN_DIR/docker" --pidfile "$DOCKER_PIDFILE" \
		--storage-driver "$driver" \
		--bridge=none --iptables=false --ip-forward=false --ip-masq=false
	pid=$SPAWNED_PID
	for ((i = 0; i < 600; i++)); do
		if [[ ! -d /proc/$pid ]]; then
			tail -n 15 "$LOG_DIR/dockerd.log" >&2
			return 1
		fi
		docker_answers && return 0
		sleep 0.1
	done
	die "dockerd did not answer within 60s; see $LOG_DIR/dockerd.log"
}

start_dockerd() {
	local changed=0 pid driver
	write_docker_config && changed=1
	if pid=$(pid_of "$DOCKER_PIDFILE" dockerd) && docker_answers; then
		if ((changed == 0)); then
			log "dockerd: running (pid $pid), storage driver $(docker_cli info --format '{{.Driver}}' 2>/dev/null)"
			return 0
		fi
		log "dockerd: restarting (config changed)"
	fi
	stop_pid "$DOCKER_PIDFILE" dockerd dockerd
	if docker_answers; then
		die "a docker daemon not started by this script serves $DOCKER_SOCK; stop it first"
	fi
	driver=overlay2
	[[ -s $DOCKER_DRIVER_FILE ]] && driver=$(<"$DOCKER_DRIVER_FILE")
	if ! try_dockerd "$driver"; then
		[[ $driver == vfs ]] && die "dockerd failed to start; see $LOG_DIR/dockerd.log"
		log "dockerd: storage driver $driver failed, falling back to vfs"
		driver=vfs
		try_dockerd vfs || die "dockerd failed to start; see $LOG_DIR/dockerd.log"
	fi
	printf '%s\n' "$driver" >"$DOCKER_DRIVER_FILE"
	pid=$(pid_of "$DOCKER_PIDFILE" dockerd) || die "dockerd answers but $DOCKER_PIDFILE is missing"
	log "dockerd: started (pid $pid), storage driver $(docker_cli info --format '{{.Driver}}'), server $(docker_cli version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"
}

# ---------------------------------------------------------------------- registries

ensure_registry_credentials() {
	umask 077
	if [[ ! -s $REGISTRY_SECRET_FILE ]]; then
		random_secret >"$REGISTRY_SECRET_FILE"
	fi
	if [[ ! -s $AUTH_PASSWORD_FILE ]]; then
		log "registry: generating the password for $AUTH_USER"
		random_secret >"$AUTH_PASSWORD_FILE"
		rm -f "$AUTH_HTPASSWD"
	fi
	chmod 0600 "$AUTH_PASSWORD_FILE" "$REGISTRY_SECRET_FILE"
	if [[ ! -s $AUTH_HTPASSWD ]] || ! htpasswd -vi "$AUTH_HTPASSWD" "$AUTH_USER" <"$AUTH_PASSWORD_FILE" >/dev/null 2>&1; then
		htpasswd -niB "$AUTH_USER" <"$AUTH_PASSWORD_FILE" 2>/dev/null | sed '/^$/d' >"$AUTH_HTPASSWD.new"
		mv -f "$AUTH_HTPASSWD.new" "$AUTH_HTPASSWD"
		chmod 0600 "$AUTH_HTPASSWD"
	fi
	umask 022
}

# write_registry_config PORT AUTH(0|1): returns 0 if the config changed.
write_registry_config() {
	local port=$1 auth=$2 authcfg=""
	if ((auth)); then
		authcfg="auth:
  htpasswd:
    realm: imagebuilder-test
    path: $AUTH_HTPASSWD"
	fi
	write_if_changed "$STATE_DIR/registry-$port.yml" 0600 <<EOF
# Written by scripts/testenv.sh; edits are overwritten.
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry-$port
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: $(<"$REGISTRY_SECRET_FILE")
  headers:
    X-Content-Type-Options: [nosniff]
$authcfg
EOF
}

start_registry() {
	local port=$1 auth=$2 changed=0 pid pidfile code i
	pidfile=$RUN_DIR/registry-$port.pid
	write_registry_config "$port" "$auth" && changed=1
	if pid=$(pid_of "$pidfile" docker-registry); then
		if ((changed == 0)) && code=$(http_status 127.0.0.1 "$port" /v2/); then
			log "registry 127.0.0.1:$port: running (pid $pid), /v2/ -> $code"
			return 0
		fi
		stop_pid "$pidfile" docker-registry "registry 127.0.0.1:$port"
	fi
	port_in_use "$port" && die "port $port is in use by a process not started by this script"
	mkdir -p "$STATE_DIR/registry-$port"
	spawn "$pidfile" "$LOG_DIR/registry-$port.log" docker-registry serve "$STATE_DIR/registry-$port.yml"
	pid=$SPAWNED_PID
	for ((i = 0; i < 300; i++)); do
		[[ -d /proc/$pid ]] || { tail -n 15 "$LOG_DIR/registry-$port.log" >&2; die "registry on port $port exited"; }
		code=$(http_status 127.0.0.1 "$port" /v2/) && break
		sleep 0.1
	done
	[[ -n ${code:-} ]] || die "registry on port $port did not answer within 30s"
	local want=200
	((auth)) && want=401
	[[ $code == "$want" ]] || die "registry on port $port answered /v2/ with $code, want $want"
	log "registry 127.0.0.1:$port: started (pid $pid), /v2/ -> $code"
}

# --------------------------------------------------------------------------- sshd

# An sshd of its own on 127.0.0.1:$SSH_PORT: root logs in with the test key only. A system sshd
# (port 22), if any, is left alone.
write_sshd_config() {
	mkdir -p "$SSH_DIR"
	chmod 0700 "$SSH_DIR"
	[[ -s $SSH_DIR/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -f "$SSH_DIR/ssh_host_ed25519_key"
	[[ -s $SSH_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C imagebuilder-test -f "$SSH_KEY"
	write_if_changed "$SSH_DIR/authorized_keys" 0600 <"$SSH_KEY.pub" || true
	printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$SSH_DIR/ssh_host_ed25519_key.pub")" |
		write_if_changed "$SSH_DIR/known_hosts" 0644 || true
	mkdir -p "$(dirname "$SSH_CLIENT_CONFIG")"
	write_if_changed "$SSH_CLIENT_CONFIG" 0644 <<EOF || true
# Written by scripts/testenv.sh (removed by its down command): the loopback test sshd.
Host 127.0.0.1
  IdentityFile $SSH_KEY
  GlobalKnownHostsFile /etc/ssh/ssh_known_hosts $SSH_DIR/known_hosts
EOF
	write_if_changed "$SSH_CONFIG" 0600 <<EOF
# Written by scripts/testenv.sh; edits are overwritten.
ListenAddress 127.0.0.1:$SSH_PORT
HostKey $SSH_DIR/ssh_host_ed25519_key
PidFile $SSH_PIDFILE
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxSessions 64
MaxStartups 64:30:128
AcceptEnv LANG LC_*
Subsystem sftp internal-sftp
EOF
}

ssh_answers() {
	ssh -q -i "$SSH_KEY" -p "$SSH_PORT" -o BatchMode=yes -o ConnectTimeout=5 \
		-o UserKnownHostsFile="$SSH_DIR/known_hosts" -o StrictHostKeyChecking=yes root@127.0.0.1 true
}

start_sshd() {
	local changed=0 pid i
	write_sshd_config && changed=1
	if pid=$(pid_of "$SSH_PIDFILE" sshd); then
		if ((changed == 0)) && ssh_answers; then
			log "sshd 127.0.0.1:$SSH_PORT: running (pid $pid)"
			return 0
		fi
		stop_pid "$SSH_PIDFILE" sshd "sshd 127.0.0.1:$SSH_PORT"
	stop_postgres
	fi
	port_in_use "$SSH_PORT" && die "port $SSH_PORT is in use by a process not started by this script"
	mkdir -p /run/sshd
	chmod 0755 /run/sshd
	/usr/sbin/sshd -t -f "$SSH_CONFIG" || die "sshd rejects $SSH_CONFIG"
	# -D: stays in the foreground of its own session; sshd writes the pid file itself too.
	spawn "$SSH_PIDFILE" "$LOG_DIR/sshd.log" /usr/sbin/sshd -D -e -f "$SSH_CONFIG"
	pid=$SPAWNED_PID
	for ((i = 0; i < 100; i++)); do
		[[ -d /proc/$pid ]] || { tail -n 15 "$LOG_DIR/sshd.log" >&2; die "sshd exited"; }
		ssh_answers && break
		sleep 0.1
	done
	ssh_answers || die "sshd on 127.0.0.1:$SSH_PORT does not accept the test key; see $LOG_DIR/sshd.log"
	log "sshd 127.0.0.1:$SSH_PORT: started (pid $pid)"
}

# --------------------------------------------------------------------------- seeds

seed_images() {
	find_go
	local common=(-busybox "linux/amd64=$BUSYBOX_DIR/amd64/bin/busybox"
		-busybox "linux/arm64=$BUSYBOX_DIR/arm64/bin/busybox"
		-applets "$BUSYBOX_DIR/applets.txt")
	(
		cd "$REPO_ROOT"
		GOWORK=off go run ./scripts/seed-images "${common[@]}" \
			"$REGISTRY/base/busybox:latest=busybox" "$REGISTRY/base/alt:latest=alt"
		GOWORK=off go run ./scripts/seed-images "${common[@]}" \
			-username "$AUTH_USER" -password-file "$AUTH_PASSWORD_FILE" \
			"$AUTH_REGISTRY/base/busybox:latest=busybox" "$AUTH_REGISTRY/base/alt:latest=alt"
	) >&2 || die "seeding base images failed"
}

# --------------------------------------------------------------------------- venvs

python_for_venvs() {
	if [[ -x /usr/bin/python3 ]]; then echo /usr/bin/python3; else command -v python3; fi
}

# ensure_venv DIR PIP_ARGS...: (re)creates the virtualenv DIR and pip-installs PIP_ARGS,
# unless DIR records the same Python, arguments and PIP_CONSTRAINT content and its program
# $VENV_PROBE (default ansible-playbook) answers --version.
ensure_venv() {
	local dir=$1 spec py
	shift
	py=$(python_for_venvs)
	spec="$("$py" --version 2>&1) $* constraints: $(cat "${PIP_CONSTRAINT:-/dev/null}")"
	if [[ -f $dir/.imagebuilder-spec && $(<"$dir/.imagebuilder-spec") == "$spec" ]] &&
		"$dir/bin/${VENV_PROBE:-ansible-playbook}" --version >/dev/null 2>&1; then
		return 0
	fi
	log "venv $dir: installing $*"
	rm -rf "$dir"
	"$py" -m venv "$dir"
	"$dir/bin/pip" install -q --disable-pip-version-check --no-input "$@" >&2
	printf '%s' "$spec" >"$dir/.imagebuilder-spec"
}

ensure_venvs() {
	ensure_venv "$VENV_ANSIBLE" "$ANSIBLE_SPEC"
	log "venv-ansible: $("$VENV_ANSIBLE/bin/ansible-playbook" --version | sed -n 1p)"

	local constraints=$CACHE/opera-constraints.txt
	printf '%s\n' "$OPERA_CONSTRAINTS" >"$constraints"
	# opera 0.7.0 pins pyyaml<=5.4.1, whose sdist fails to build with Cython 3; the
	# constraint reaches pip's isolated build environments only through PIP_CONSTRAINT.
	# setuptools 82 dropped pkg_resources, which opera imports.
	(
		export PIP_CONSTRAINT=$constraints
		ensure_venv "$VENV_OPERA" 'setuptools<82' "$OPERA_SPEC" "$ANSIBLE_SPEC"
	)
	"$VENV_OPERA/bin/opera" --version >/dev/null 2>&1 || die "opera --version fails in $VENV_OPERA"
	log "venv-opera: opera $("$VENV_OPERA/bin/opera" --version 2>&1 | tail -n1), $("$VENV_OPERA/bin/ansible-playbook" --version | sed -n 1p)"

	ensure_venv "$VENV_GATES" "${GATES_SPECS[@]}"
	ensure_ansible_test_venvs
	log "venv-ansible-gates: $("$VENV_GATES/bin/ansible-lint" --nocolor --version 2>/dev/null | sed -n 1p), galaxy-importer $("$VENV_GATES/bin/pip" show galaxy-importer 2>/dev/null | sed -n 's/^Version: //p')"

	VENV_PROBE=st ensure_venv "$VENV_SCHEMATHESIS" "$SCHEMATHESIS_SPEC"
	log "venv-schemathesis: $("$VENV_SCHEMATHESIS/bin/st" --version 2>&1 | tail -n1)"
}

# ansible-test runs each sanity test in a virtualenv of its own, made on first use, into which it
# installs pip with a get-pip.py downloaded from a host outside the package registries. Give it a
# bootstrap that uses the pip bundled with Python instead (ansible-test looks in its cache first),
# then make those virtualenvs now, so that scripts/ansible-gates.sh downloads nothing.
ensure_ansible_test_venvs() {
	local pip_version cache=${HOME:-/root}/.ansible/test/cache prime marker
	pip_version=$("$VENV_GATES/bin/python3" -c 'from ansible_test._internal import python_requirements as r; import re, inspect; print(re.search(r"pip=.([0-9.]+).", inspect.getsource(r)).group(1))') ||
		die "cannot tell which pip ansible-test bootstraps"
	mkdir -p "$cache"
	install -m 0644 "$SCRIPT_DIR/lib/get-pip-offline.py" "$cache/get_pip_${pip_version//./_}.py"
	marker=$VENV_GATES/.ansible-test-venvs
	if [[ -f $marker && $(<"$marker") == "$(<"$VENV_GATES/.imagebuilder-spec") $pip_version" ]]; then
		return 0
	fi
	log "ansible-test: making the sanity tests' virtualenvs"
	prime=$(mktemp -d)
	mkdir -p "$prime/ansible_collections/imagebuilder/prime"
	printf 'namespace: imagebuilder\nname: prime\nversion: 0.0.1\nreadme: README.md\nauthors: [x]\n' >"$prime/ansible_collections/imagebuilder/prime/galaxy.yml"
	(cd "$prime/ansible_collections/imagebuilder/prime" &&
		"$VENV_GATES/bin/ansible-test" sanity --prime-venvs --python "$("$VENV_GATES/bin/python3" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" >&2) ||
		{ rm -rf "$prime"; die "ansible-test sanity --prime-venvs failed"; }
	rm -rf "$prime"
	printf '%s' "$(<"$VENV_GATES/.imagebuilder-spec") $pip_version" >"$marker"
}

# ----------------------------------------------------------------------- postgresql

# postgres_cluster prints "VERSION NAME" of Debian's first PostgreSQL cluster, creating one
# (the newest installed version, "main") when there is none.
postgres_cluster() {
	local line
	line=$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 {print $1, $2}')
	if [[ -z $line ]]; then
		local v
		v=$(ls /usr/lib/postgresql | sort -n | tail -1)
		[[ -n $v ]] || die "postgresql: no server version installed"
		pg_createcluster "$v" main >&2 || die "postgresql: pg_createcluster $v main failed"
		line="$v main"
	fi
	printf '%s\n' "$line"
}

postgres_answers() { pg_isready -q -h 127.0.0.1 -p "$POSTGRES_PORT" 2>/dev/null; }

psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$POSTGRES_PORT" "$@"; }

# start_postgres: Debian's cluster on 127.0.0.1 only (no systemd here: pg_ctlcluster), and the
# role and database imagebuilder with a password the env command exports.
start_postgres() {
	local version name conf changed=1
	read -r version name < <(postgres_cluster)
	conf=/etc/postgresql/$version/$name/conf.d/imagebuilder.conf
	printf "listen_addresses = '127.0.0.1'\nport = %s\n" "$POSTGRES_PORT" | write_if_changed "$conf" 0644 || changed=0
	if ! grep -qx 'auto' "/etc/postgresql/$version/$name/start.conf" 2>/dev/null; then
		echo auto >"/etc/postgresql/$version/$name/start.conf"
	fi
	if pg_ctlcluster "$version" "$name" status >/dev/null 2>&1; then
		if ((changed)); then
			log "postgresql: restarting $version/$name (configuration changed)"
			pg_ctlcluster "$version" "$name" restart >&2 9>&- || die "postgresql: restart failed (see /var/log/postgresql)"
		fi
	else
		port_in_use "$POSTGRES_PORT" && die "postgresql: port $POSTGRES_PORT is taken by another process"
		log "postgresql: starting $version/$name on 127.0.0.1:$POSTGRES_PORT"
		pg_ctlcluster "$version" "$name" start >&2 9>&- || die "postgresql: start failed (see /var/log/postgresql)"
	fi
	local i
	for i in $(seq 1 50); do
		postgres_answers && break
		sleep 0.2
	done
	postgres_answers || die "postgresql: not answering on 127.0.0.1:$POSTGRES_PORT"
	umask 077
	[[ -s $POSTGRES_PASSWORD_FILE ]] || random_secret >"$POSTGRES_PASSWORD_FILE"
	umask 022
	local pw
	pw=$(<"$POSTGRES_PASSWORD_FILE")
	# The role (its password set every time: cheap, and right after a reinstall) and its database.
	psql_admin -d postgres -v pw="$pw" >&2 <<-'SQL'
		SELECT format('CREATE ROLE imagebuilder LOGIN CREATEDB PASSWORD %L', :'pw')
		WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'imagebuilder') \gexec
		SELECT format('ALTER ROLE imagebuilder LOGIN CREATEDB PASSWORD %L', :'pw') \gexec
		SELECT 'CREATE DATABASE imagebuilder OWNER imagebuilder'
		WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'imagebuilder') \gexec
	SQL
}

stop_postgres() {
	local version name
	read -r version name < <(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 {print $1, $2}') || return 0
	[[ -n ${version:-} ]] || return 0
	if pg_ctlcluster "$version" "$name" status >/dev/null 2>&1; then
		pg_ctlcluster "$version" "$name" stop >&2 && log "postgresql: stopped $version/$name"
	fi
}

# ------------------------------------------------------------------------ commands

cmd_up() {
	need_root
	make_dirs
	lock
	local start=$SECONDS
	timed "apt packages" ensure_apt
	stop_system_units
	timed "busybox-static debs" ensure_busybox
	timed "qemu binfmt" ensure_binfmt
	timed "buildkit binaries" ensure_buildkit_binaries
	timed "buildkitd" start_buildkitd
	timed "dockerd" start_dockerd
	ensure_registry_credentials
	timed "registry :5000" start_registry 5000 0
	timed "registry :5001" start_registry 5001 1
	timed "sshd :$SSH_PORT" start_sshd
	timed "postgresql :$POSTGRES_PORT" start_postgres
	timed "base images" seed_images
	timed "virtualenvs" ensure_venvs
	log "up: ready in $((SECONDS - start))s; run: eval \"\$($0 env)\""
}

cmd_down() {
	need_root
	make_dirs
	lock
	stop_pid "$DOCKER_PIDFILE" dockerd dockerd
	stop_pid "$BUILDKIT_PIDFILE" buildkitd buildkitd
	stop_pid "$RUN_DIR/registry-5001.pid" docker-registry "registry 127.0.0.1:5001"
	stop_pid "$RUN_DIR/registry-5000.pid" docker-registry "registry 127.0.0.1:5000"
	stop_pid "$SSH_PIDFILE" sshd "sshd 127.0.0.1:$SSH_PORT"
	rm -f "$SSH_CLIENT_CONFIG"
	log "down: services stopped (data in $STATE_DIR and caches in $CACHE kept)"
}

cmd_restart_buildkitd() {
	need_root
	make_dirs
	lock
	buildkit_binaries_ok || die "buildkit binaries missing; run: $0 up"
	stop_pid "$BUILDKIT_PIDFILE" buildkitd buildkitd
	ensure_binfmt
	start_buildkitd
}

cmd_env() {
	local q
	printf 'export BUILDKIT_HOST=%q\n' "$BUILDKIT_ADDR"
	printf 'export DOCKER_HOST=%q\n' "$DOCKER_ADDR"
	printf 'export IMAGEBUILDER_TEST_BUILDKIT=%q\n' "$BUILDKIT_ADDR"
	printf 'export IMAGEBUILDER_TEST_DOCKER=%q\n' "$DOCKER_ADDR"
	printf 'export IMAGEBUILDER_TEST_REGISTRY=%q\n' "$REGISTRY"
	printf 'export IMAGEBUILDER_TEST_AUTH_REGISTRY=%q\n' "$AUTH_REGISTRY"
	printf 'export IMAGEBUILDER_TEST_AUTH_USER=%q\n' "$AUTH_USER"
	if [[ -r $AUTH_PASSWORD_FILE ]]; then
		printf 'export IMAGEBUILDER_TEST_AUTH_PASSWORD=%q\n' "$(<"$AUTH_PASSWORD_FILE")"
	else
		log "env: $AUTH_PASSWORD_FILE is not readable; IMAGEBUILDER_TEST_AUTH_PASSWORD not set (run up)"
	fi
	printf 'export IMAGEBUILDER_TEST_BASE=%q\n' "$REGISTRY/base/busybox:latest"
	printf 'export IMAGEBUILDER_TEST_BASE_ALT=%q\n' "$REGISTRY/base/alt:latest"
	printf 'export IMAGEBUILDER_TEST_AUTH_BASE=%q\n' "$AUTH_REGISTRY/base/busybox:latest"
	printf 'export IMAGEBUILDER_TEST_AUTH_BASE_ALT=%q\n' "$AUTH_REGISTRY/base/alt:latest"
	if q=$(pid_of "$BUILDKIT_PIDFILE" buildkitd); then
		printf 'export IMAGEBUILDER_TEST_BUILDKITD_PID=%q\n' "$q"
	else
		log "env: buildkitd is not running; IMAGEBUILDER_TEST_BUILDKITD_PID not set"
	fi
	# Tests that kill buildkitd run "$IMAGEBUILDER_TEST_ENV_SCRIPT restart-buildkitd".
	printf 'export IMAGEBUILDER_TEST_ENV_SCRIPT=%q\n' "$SCRIPT_DIR/testenv.sh"
	# The loopback sshd: ssh -i KEY -p PORT -o UserKnownHostsFile=KNOWN_HOSTS USER@HOST.
	printf 'export IMAGEBUILDER_TEST_SSH_HOST=%q\n' 127.0.0.1
	printf 'export IMAGEBUILDER_TEST_SSH_PORT=%q\n' "$SSH_PORT"
	printf 'export IMAGEBUILDER_TEST_SSH_USER=%q\n' root
	printf 'export IMAGEBUILDER_TEST_SSH_KEY=%q\n' "$SSH_KEY"
	printf 'export IMAGEBUILDER_TEST_SSH_KNOWN_HOSTS=%q\n' "$SSH_DIR/known_hosts"
	printf 'export IMAGEBUILDER_TEST_ANSIBLE_BIN=%q\n' "$VENV_ANSIBLE/bin"
	printf 'export IMAGEBUILDER_TEST_OPERA_BIN=%q\n' "$VENV_OPERA/bin"
	printf 'export IMAGEBUILDER_TEST_GATES_BIN=%q\n' "$VENV_GATES/bin"
	if [[ -r $POSTGRES_PASSWORD_FILE ]]; then
		printf 'export IMAGEBUILDER_TEST_POSTGRES_URL=%q\n' "postgres://$POSTGRES_USER:$(<"$POSTGRES_PASSWORD_FILE")@127.0.0.1:$POSTGRES_PORT/imagebuilder?sslmode=disable"
	else
		log "env: $POSTGRES_PASSWORD_FILE is not readable; IMAGEBUILDER_TEST_POSTGRES_URL not set (run up)"
	fi
	# schemathesis, run against imagebuilder serve's OpenAPI document.
	printf 'export IMAGEBUILDER_TEST_SCHEMATHESIS_BIN=%q\n' "$VENV_SCHEMATHESIS/bin/st"
	# Headless Chromium for the web page tests (chromedp).
	printf 'export IMAGEBUILDER_TEST_CHROMIUM=%q\n' /usr/bin/chromium
	# shellcheck disable=SC2016 # $PATH is expanded by the eval, not here.
	printf 'export PATH=%q:"$PATH"\n' "$BIN_DIR"
}

cmd_status() {
	local ok=1 pid code
	if pid=$(pid_of "$BUILDKIT_PIDFILE" buildkitd) && code=$(buildkit_platforms) && [[ -n $code ]]; then
		echo "buildkitd        running  pid $pid  $BUILDKIT_ADDR  platforms $code"
	else
		echo "buildkitd        DOWN     $BUILDKIT_ADDR"
		ok=0
	fi
	if pid=$(pid_of "$DOCKER_PIDFILE" dockerd) && code=$(docker_cli version --format '{{.Server.Version}} API {{.Server.APIVersion}}' 2>/dev/null); then
		echo "dockerd          running  pid $pid  $DOCKER_ADDR  $code, driver $(docker_cli info --format '{{.Driver}}' 2>/dev/null)"
	else
		echo "dockerd          DOWN     $DOCKER_ADDR"
		ok=0
	fi
	local port
	for port in 5000 5001; do
		if pid=$(pid_of "$RUN_DIR/registry-$port.pid" docker-registry) && code=$(http_status 127.0.0.1 "$port" /v2/); then
			echo "registry :$port   running  pid $pid  http://127.0.0.1:$port/v2/ -> $code"
		else
			echo "registry :$port   DOWN     127.0.0.1:$port"
			ok=0
		fi
	done
	if pid=$(pid_of "$SSH_PIDFILE" sshd) && ssh_answers; then
		echo "sshd             running  pid $pid  root@127.0.0.1:$SSH_PORT (key $SSH_KEY)"
	else
		echo "sshd             DOWN     127.0.0.1:$SSH_PORT"
		ok=0
	fi
	if postgres_answers; then
		echo "postgresql       running  127.0.0.1:$POSTGRES_PORT ($(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 {print $1 "/" $2}'))"
	else
		echo "postgresql       DOWN     127.0.0.1:$POSTGRES_PORT"
		ok=0
	fi
	if [[ -r /proc/sys/fs/binfmt_misc/qemu-aarch64 ]] && grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
		echo "binfmt           qemu-aarch64 enabled ($(sed -n 's/^flags: //p' /proc/sys/fs/binfmt_misc/qemu-aarch64))"
	else
		echo "binfmt           qemu-aarch64 NOT enabled"
		ok=0
	fi
	if [[ -x /usr/bin/chromium ]]; then
		echo "chromium         $(/usr/bin/chromium --version 2>/dev/null | tail -n 1)"
	else
		echo "chromium         MISSING (Debian package chromium)"
		ok=0
	fi
	local v
	for v in "$VENV_ANSIBLE" "$VENV_OPERA" "$VENV_GATES"; do
		if [[ -x $v/bin/ansible-playbook ]]; then
			echo "venv             $v  $("$v/bin/ansible-playbook" --version 2>/dev/null | sed -n 1p)"
		else
			echo "venv             $v  MISSING"
			ok=0
		fi
	done
	if [[ -x $VENV_SCHEMATHESIS/bin/st ]]; then
		echo "venv             $VENV_SCHEMATHESIS  $("$VENV_SCHEMATHESIS/bin/st" --version 2>&1 | tail -n1)"
	else
		echo "venv             $VENV_SCHEMATHESIS  MISSING"
		ok=0
	fi
	((ok))
}

main() {
	case ${1:-} in
	up) cmd_up ;;
	down) cmd_down ;;
	env) cmd_env ;;
	status) cmd_status ;;
	restart-buildkitd) cmd_restart_buildkitd ;;
	kill-buildkitd)
		local pid
		if pid=$(pid_of "$BUILDKIT_PIDFILE" buildkitd); then
			kill -KILL "$pid"
			log "buildkitd: killed (pid $pid)"
		fi
		;;
	*)
		sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
		exit 2
		;;
	esac
}

main "$@"
