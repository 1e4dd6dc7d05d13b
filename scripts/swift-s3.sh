#!/usr/bin/env bash
# swift-s3.sh - a real, local S3 endpoint: OpenStack Swift + s3api from Debian packages.
# Used by .ci/run for the integration suite (npm run test:integration).
#
#   swift-s3.sh start    install (if needed), configure, start, wait until ready, then
#                        print `export S3_...` lines on stdout:  eval "$(swift-s3.sh start)"
#   swift-s3.sh stop     stop only the daemons this script started (by PID file)
#   swift-s3.sh status   show the daemons; exit 0 if all run, 3 if none, 1 if some
#
# Env: SWIFT_S3_DIR  (data, configs, logs, PIDs; default /tmp/sqlite-edge-backup-swift)
#      SWIFT_S3_PORT (S3 port, default 4575; the account/container/object servers use PORT+1..3)
#      SWIFT_S3_REGION (default us-east-1; SigV4 requests signed for another region get 400)
#      SWIFT_S3_START_TIMEOUT (seconds to wait for readiness, default 60)
#      SWIFT_S3_DELETE_MD5_SHIM=1 (proxy adds Content-MD5 to DeleteObjects; for comparison only)
# Everything binds to 127.0.0.1. Credentials: tempauth user test:tester / testing.
# Logs: $SWIFT_S3_DIR/log/<server>.log. Messages go to stderr; only exports go to stdout.
# Data persists across stop/start; for a clean slate: stop, then rm -rf "$SWIFT_S3_DIR".
# shellcheck disable=SC2015  # `a && b || die` is meant: die if either fails
set -euo pipefail

DIR=${SWIFT_S3_DIR:-/tmp/sqlite-edge-backup-swift}
PORT=${SWIFT_S3_PORT:-4575}
REGION=${SWIFT_S3_REGION:-us-east-1}
MD5_SHIM=""; [[ ${SWIFT_S3_DELETE_MD5_SHIM:-0} == 1 ]] && MD5_SHIM="s3md5 "
ACCESS_KEY=test:tester
SECRET_KEY=testing
PKGS=(swift-proxy swift-account swift-container swift-object)
SERVERS=(account container object proxy)
PY=/usr/bin/python3          # Debian's python, the one Swift is installed for (not pyenv's)
START_TIMEOUT=${SWIFT_S3_START_TIMEOUT:-60}

log() { echo "swift-s3: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $PORT =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65533)) || die "bad SWIFT_S3_PORT '$PORT'"
case "$DIR" in /*) ;; *) die "SWIFT_S3_DIR must be an absolute path: '$DIR'" ;; esac

port_of() { case $1 in proxy) echo "$PORT" ;; account) echo $((PORT + 1)) ;;
  container) echo $((PORT + 2)) ;; object) echo $((PORT + 3)) ;; esac; }

# Run Swift's Python with a clean environment: no stray PYTHONPATH/PYTHONHOME or ~/.local
# packages shadowing Debian's; our two small WSGI filters are importable from $DIR/lib.
# (An array, not a function: "${SWIFTENV[@]}" cmd & must exec in place so $! is the daemon.)
SWIFTENV=(env -u PYTHONHOME PYTHONPATH="$DIR/lib" PYTHONNOUSERSITE=1 PYTHONDONTWRITEBYTECODE=1)

# PID of a server this script started and that is still alive, else nothing (exit 1).
# The command line must name our config file, so a recycled PID is never taken for ours.
our_pid() {
  local f="$DIR/run/$1.pid" pid
  [[ -r $f ]] && pid=$(<"$f") && [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR/etc/$1-server.conf" || return 1
  echo "$pid"
}

alive() { # process exists and is not a zombie (a dead daemon may wait a while to be reaped)
  local st
  st=$(<"/proc/$1/stat") 2>/dev/null || return 1
  st=${st##*) } && [[ ${st%% *} != Z ]]
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

healthy() { # GET /healthcheck on 127.0.0.1:PORT answers 200 (pure bash: no process to start)
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET /healthcheck HTTP/1.0\r\n\r\n' >&3 &&
    read -r -t 10 line <&3 && [[ $line == HTTP/1.?' 200'* ]]) 2>/dev/null
}

install_pkgs() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *' ok installed' ]] || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  ((EUID == 0)) || die "Debian packages missing: ${missing[*]} - install them as root (apt-get install ${missing[*]})"
  log "installing ${missing[*]} (apt-get, log: $DIR/log/apt.log)"
  # Keep apt from starting Debian's own Swift services (they would listen on 0.0.0.0);
  # a policy-rc.d made here is removed again on exit, whatever happens.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  fi
  if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o DPkg::Lock::Timeout=120 --no-install-recommends "${missing[@]}"; } >"$DIR/log/apt.log" 2>&1; then
    tail -n 20 "$DIR/log/apt.log" >&2
    die "apt-get install failed (full log: $DIR/log/apt.log)"
  fi
}

write_configs() {
  local s me
  me=$(id -un)
  # Swift always reads the hash settings and storage policies from /etc/swift/swift.conf;
  # Debian ships one (policy 0 only). Recreate a minimal one if it was removed.
  if ! grep -qs '^swift_hash_path_suffix' /etc/swift/swift.conf; then
    ((EUID == 0)) || die "/etc/swift/swift.conf lacks [swift-hash]; create it as root"
    mkdir -p /etc/swift
    printf '[swift-hash]\nswift_hash_path_suffix = swift-s3-local\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n' \
      >/etc/swift/swift.conf
  fi
  for s in account container object; do
    cat >"$DIR/etc/$s-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $(port_of $s)
# one process per server: its PID is the one in run/, and nothing forks
workers = 0
user = $me
swift_dir = $DIR/etc
devices = $DIR/data
# storage is a plain directory, not a mounted disk
mount_check = false
disable_fallocate = true
log_level = INFO
[pipeline:main]
pipeline = healthcheck $s-server
[app:$s-server]
use = egg:swift#$s
[filter:healthcheck]
use = egg:swift#healthcheck
EOF
  done
  cat >"$DIR/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $PORT
workers = 0
user = $me
swift_dir = $DIR/etc
log_level = INFO
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats ${MD5_SHIM}s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = $REGION
# AWS allows 10000 parts per multipart upload (Swift's default is 1000)
max_upload_part_num = 10000
[filter:tempauth]
use = egg:swift#tempauth
user_${ACCESS_KEY%%:*}_${ACCESS_KEY#*:} = $SECRET_KEY .admin
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
[filter:cache]
# tempauth insists on a memcache; this stand-in caches nothing (no memcached to run)
paste.filter_factory = swift_s3_shim:nocache_filter
[filter:s3md5]
# s3api wants Content-MD5 on DeleteObjects; AWS SDK v3 sends a CRC32 instead (see shim)
paste.filter_factory = swift_s3_shim:content_md5_filter
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:dlo]
use = egg:swift#dlo
[filter:versioned_writes]
use = egg:swift#versioned_writes
EOF
  cat >"$DIR/lib/swift_s3_shim.py" <<'EOF'
"""Two small WSGI filters for the local Swift proxy (written by swift-s3.sh)."""
import base64
import hashlib
import io
import zlib
from urllib.parse import parse_qs


class NoCache(object):
    """Stands in for memcache: every lookup misses, so nothing is ever stale."""
    def get(self, key, *args, **kwargs):
        return None

    def get_multi(self, keys, *args, **kwargs):
        return [None] * len(keys)

    def __getattr__(self, name):  # set, delete, incr, set_multi, ...
        return lambda *args, **kwargs: None


def nocache_filter(global_conf, **local_conf):
    cache = NoCache()

    def factory(app):
        def middleware(env, start_response):
            env['swift.cache'] = cache
            return app(env, start_response)
        return middleware
    return factory


def content_md5_filter(global_conf, **local_conf):
    """S3 DeleteObjects (POST ?delete): Swift 2.30's s3api insists on Content-MD5, but
    AWS SDK v3 >= 3.729 sends an x-amz-checksum-* header (CRC32) instead, as AWS allows.
    Then check that checksum (CRC32, SHA1, SHA256) and add the body's Content-MD5."""
    algos = {'CRC32': lambda b: zlib.crc32(b).to_bytes(4, 'big'),
             'SHA1': lambda b: hashlib.sha1(b).digest(),
             'SHA256': lambda b: hashlib.sha256(b).digest()}
    prefix = 'HTTP_X_AMZ_CHECKSUM_'

    def factory(app):
        def middleware(env, start_response):
            sums = {k[len(prefix):]: v for k, v in env.items()
                    if k.startswith(prefix) and k != prefix + 'TYPE'}
            cl = env.get('CONTENT_LENGTH') or ''
            length = int(cl) if cl.isdigit() else 0
            if (sums and env.get('REQUEST_METHOD') == 'POST'
                    and 'HTTP_CONTENT_MD5' not in env
                    and 0 < length <= 10 * 1024 * 1024
                    and 'delete' in parse_qs(env.get('QUERY_STRING', ''),
                                             keep_blank_values=True)):
                body = env['wsgi.input'].read(length)
                env['wsgi.input'] = io.BytesIO(body)
                md5 = hashlib.md5(body).digest()
                if any(base64.b64encode(algos[a](body)).decode() != v
                       for a, v in sums.items() if a in algos):
                    md5 = b'checksum-mismatch'[:16]  # s3api then answers BadDigest
                env['HTTP_CONTENT_MD5'] = base64.b64encode(md5).decode()
            return app(env, start_response)
        return middleware
    return factory
EOF
}

build_rings() { # one-replica rings with a single device d1 on 127.0.0.1 (rebuilt when ports change)
  local want="$PORT"
  [[ -f $DIR/etc/rings.stamp && $(<"$DIR/etc/rings.stamp") == "$want" ]] &&
    [[ -f $DIR/etc/object.ring.gz ]] && return 0
  "${SWIFTENV[@]}" "$PY" - "$DIR/etc" "$(port_of account)" "$(port_of container)" "$(port_of object)" <<'EOF'
import sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], dict(zip(('account', 'container', 'object'), map(int, sys.argv[2:])))
for name, port in ports.items():
    b = RingBuilder(10, 1, 1)  # 2^10 partitions, 1 replica, min_part_hours 1
    b.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port, 'device': 'd1', 'weight': 1})
    b.rebalance()
    b.get_ring().save('%s/%s.ring.gz' % (etc, name))
EOF
  echo "$want" >"$DIR/etc/rings.stamp"
}

print_env() {
  echo "export S3_ENDPOINT=http://127.0.0.1:$PORT"
  echo "export S3_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "export S3_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "export S3_REGION=$REGION"
}

all_ready() {
  local s
  for s in "${SERVERS[@]}"; do
    our_pid "$s" >/dev/null && healthy "$(port_of "$s")" || return 1
  done
}

cmd_start() {
  local s p t0=$SECONDS
  mkdir -p "$DIR"/{etc,lib,log,run,data/d1}
  if all_ready; then log "already running"; print_env; return 0; fi
  cmd_stop >/dev/null 2>&1 || true   # clear a half-started or crashed set
  install_pkgs
  for s in "${SERVERS[@]}"; do
    p=$(port_of "$s")
    port_busy "$p" && die "port $p ($s) on 127.0.0.1 is already in use by another program; set SWIFT_S3_PORT"
  done
  "$PY" -c 'import os,sys; os.setxattr(sys.argv[1], "user.swift-s3", b"1")' "$DIR/data/d1" 2>/dev/null ||
    die "$DIR/data does not support user xattrs (Swift needs them); set SWIFT_S3_DIR elsewhere"
  write_configs
  build_rings
  for s in "${SERVERS[@]}"; do
    # -v: also log to stderr, i.e. to log/$s.log (there is no syslog here)
    "${SWIFTENV[@]}" nohup "/usr/bin/swift-$s-server" "$DIR/etc/$s-server.conf" -v </dev/null >>"$DIR/log/$s.log" 2>&1 9>&- &
    echo $! >"$DIR/run/$s.pid"
  done
  until all_ready; do
    for s in "${SERVERS[@]}"; do
      our_pid "$s" >/dev/null && continue
      tail -n 30 "$DIR/log/$s.log" >&2 || true
      cmd_stop >/dev/null 2>&1 || true
      die "swift-$s-server exited during start-up (log: $DIR/log/$s.log)"
    done
    if ((SECONDS - t0 > START_TIMEOUT)); then
      cmd_stop >/dev/null 2>&1 || true
      die "not ready after ${START_TIMEOUT}s (logs: $DIR/log/)"
    fi
    sleep 0.2
  done
  # End-to-end probe: a SigV4-signed ListBuckets (curl >= 7.75; the netrc keeps the ':' in the key)
  if command -v curl >/dev/null &&
    ! curl -sf --noproxy '*' --aws-sigv4 "aws:amz:$REGION:s3" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      --netrc-file <(echo "machine 127.0.0.1 login $ACCESS_KEY password $SECRET_KEY") \
      "http://127.0.0.1:$PORT/" >/dev/null; then
    cmd_stop >/dev/null 2>&1 || true
    die "signed S3 ListBuckets failed (log: $DIR/log/proxy.log)"
  fi
  log "ready on http://127.0.0.1:$PORT after $((SECONDS - t0))s (data: $DIR)"
  print_env
}

cmd_stop() {
  local s pid i rc=0
  for s in "${SERVERS[@]}"; do
    if pid=$(our_pid "$s"); then
      kill -TERM "$pid" 2>/dev/null || { log "cannot signal $s (pid $pid): started by another user?"; rc=1; continue; }
      for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
      ! alive "$pid" || { log "$s (pid $pid) ignored SIGTERM; killing"; kill -KILL "$pid" 2>/dev/null || true; }
      log "stopped $s (pid $pid)"
    fi
    rm -f "$DIR/run/$s.pid"
  done
  return $rc
}

cmd_status() {
  local s pid h up=0
  for s in "${SERVERS[@]}"; do
    if pid=$(our_pid "$s"); then
      up=$((up + 1))
      healthy "$(port_of "$s")" && h=healthy || h="not answering"
      echo "$s: running, pid $pid, 127.0.0.1:$(port_of "$s"), $h"
    else
      echo "$s: stopped"
    fi
  done
  ((up == ${#SERVERS[@]})) && { echo "S3 endpoint: http://127.0.0.1:$PORT (region $REGION)"; return 0; }
  ((up == 0)) && return 3
  return 1
}

lock() { # one start/stop at a time per data dir (e.g. parallel test workers)
  mkdir -p "$DIR/run" && exec 9>"$DIR/run/lock" && flock -w 120 9 || die "could not lock $DIR/run/lock"
}
case "${1:-}" in
  start) lock && cmd_start ;;
  stop) lock && cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status   (env: SWIFT_S3_DIR, SWIFT_S3_PORT, SWIFT_S3_REGION)" >&2; exit 2 ;;
esac
