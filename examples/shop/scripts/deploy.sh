#!/bin/sh
# Serve one commit of the shop in one environment on this machine:
#
#     scripts/deploy.sh ENV SHA PORT        (from the project's root, as Jackline runs it)
#
# Exports SHA to var/releases/ENV/SHA, stops ENV's previous process (var/ENV.pid), starts the new
# one on 127.0.0.1:PORT with the environment's own database var/ENV.db (kept across deploys;
# migrations apply at start) and log var/ENV.log, and returns at once: the caller waits on /healthz.
# Every file is per environment, so two environments can deploy at the same time.
set -eu

die() {
    echo "deploy.sh: $*" >&2
    exit 2
}

[ "$#" -eq 3 ] || die "usage: scripts/deploy.sh ENV SHA PORT (got $# arguments)"
env=$1 sha=$2 port=$3
case $env in
    '' | *[!A-Za-z0-9_-]*) die "environment '$env' must be letters, digits, '-' or '_'" ;;
esac
case $port in
    '' | *[!0-9]*) die "port '$port' must be a number (8101)" ;;
esac

# The project's root is the folder above this script; the caller's cwd is not relied on.
cd "$(dirname -- "$0")/.."
root=$(pwd -P)
commit=$(git rev-parse --verify --quiet "$sha^{commit}") ||
    die "'$sha' is not a commit of the repository at $root"
python=${SHOP_PYTHON:-$(command -v python3 || command -v python)} ||
    die "no python3 on PATH; set SHOP_PYTHON to the interpreter to serve with"

releases=$root/var/releases/$env
release=$releases/$commit
db=$root/var/$env.db
log=$root/var/$env.log
pidfile=$root/var/$env.pid
mkdir -p "$releases"

# Export into a private folder and rename it into place, so a deploy that dies half way never
# leaves a partial release that a re-deploy of the same sha would then trust.
if [ ! -d "$release" ]; then
    tmp=$releases/.tmp.$commit.$$
    rm -rf "$tmp"
    mkdir "$tmp"
    git archive --format=tar "$commit" | tar -x -C "$tmp"
    if [ ! -f "$tmp/shop/app.py" ]; then
        rm -rf "$tmp"
        die "commit $commit has no shop/app.py: not a commit of the shop"
    fi
    if [ -d "$release" ]; then
        rm -rf "$tmp" # a concurrent deploy of the same commit got there first
    else
        mv "$tmp" "$release"
    fi
fi

# One service per environment: the previous one lets go of the port and the database first.
sh "$root/scripts/stop.sh" "$env" >/dev/null
# Something else on the port would answer the health check in the new service's place.
"$python" -c "
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(('127.0.0.1', $port))
except OSError as e:
    sys.exit(f'deploy.sh: cannot serve $env on port $port: {e.strerror}; stop what listens there')
" || exit 1

echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) INFO deploy.sh: starting $commit on port $port" >>"$log"
cd "$release"
# Its own session, no terminal and stdin closed: the service outlives the deploy command and
# whoever ran it (Jackline's step, a CI job, a shell that is closed).
if command -v setsid >/dev/null 2>&1; then
    setsid nohup "$python" -m shop.app --port "$port" --db "$db" </dev/null >>"$log" 2>&1 &
else
    nohup "$python" -m shop.app --port "$port" --db "$db" </dev/null >>"$log" 2>&1 &
fi
pid=$!
echo "$pid" >"$pidfile.tmp.$$"
mv "$pidfile.tmp.$$" "$pidfile"
short=$(echo "$commit" | cut -c1-12)
echo "deploy.sh: started $env at $short on http://127.0.0.1:$port (pid $pid, log var/$env.log)"
