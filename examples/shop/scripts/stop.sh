#!/bin/sh
# Stop the shop serving one environment on this machine: scripts/stop.sh ENV
#
# Reads var/ENV.pid (written by deploy.sh), sends TERM, waits up to 10 s, then KILL. Nothing
# running is not an error. Only a pid that still belongs to ENV's shop is signalled: a stale
# pid file must not kill whatever process reuses the number.
set -eu

[ "$#" -eq 1 ] || {
    echo "stop.sh: usage: scripts/stop.sh ENV (got $# arguments)" >&2
    exit 2
}
env=$1
case $env in
    '' | *[!A-Za-z0-9_-]*)
        echo "stop.sh: environment '$env' must be letters, digits, '-' or '_'" >&2
        exit 2
        ;;
esac

cd "$(dirname -- "$0")/.."
root=$(pwd -P)
pidfile=$root/var/$env.pid
db=$root/var/$env.db

# Running, as opposed to gone or a zombie nobody has reaped yet (PID 1 in a container may not).
alive() {
    case $(ps -o stat= -p "$1" 2>/dev/null | tr -d ' ' || true) in
        '' | Z*) return 1 ;;
    esac
}

# Its command line, untruncated (ps cuts it to the terminal's or $COLUMNS' width otherwise).
command_of() {
    if [ -r "/proc/$1/cmdline" ]; then
        tr '\000' ' ' <"/proc/$1/cmdline"
    else
        ps -ww -o args= -p "$1" 2>/dev/null || true
    fi
}

[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
case $(command_of "$pid") in
    *shop.app*"--db $db"*)
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while alive "$pid" && [ "$i" -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "stop.sh: stopped $env (pid $pid)"
        ;;
    '') ;; # gone already
    *) echo "stop.sh: var/$env.pid names pid $pid, which is not $env's shop; left alone" >&2 ;;
esac
rm -f "$pidfile"
