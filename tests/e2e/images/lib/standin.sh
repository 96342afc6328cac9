# Shared shell helpers of the stand-in images (busybox ash). Sourced, not run.
# The stand-ins replace the real images only where no registry is reachable:
# they listen where the real service would and answer the commands our health
# checks call, so `depends_on: service_healthy` is exercised for real.

# tcp_open HOST PORT: true when HOST:PORT accepts a TCP connection within 3 s.
tcp_open() {
    nc -w 3 "$1" "$2" </dev/null >/dev/null 2>&1
}

# need HOST PORT WHAT: wait up to 60 s for a dependency, as the real service
# would fail to start without it. A wrong host or port in the generated .env
# (the reference's DIALER_POSTGRES_PORT=5433) makes the stand-in exit here.
need() {
    tries=0
    until tcp_open "$1" "$2"; do
        tries=$((tries + 1))
        if [ "$tries" -ge 30 ]; then
            echo "stand-in: $3 at $1:$2 never answered" >&2
            exit 1
        fi
        sleep 2
    done
    echo "stand-in: $3 at $1:$2 answers"
}

# url_host_port URL: "host port" of scheme://[userinfo@]host:port[/path].
url_host_port() {
    echo "$1" | sed -e 's#^[a-z]*://##' -e 's#^.*@##' -e 's#/.*$##' -e 's#:# #'
}

# idle: stay up until SIGTERM; PID 1 ignores SIGTERM without a handler and
# `docker stop` would otherwise wait for its 10 s timeout.
idle() {
    trap 'exit 0' TERM INT
    while :; do
        sleep 3600 &
        wait $!
    done
}
