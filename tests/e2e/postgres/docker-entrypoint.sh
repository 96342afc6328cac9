#!/bin/sh
# Debian's real PostgreSQL 15, started the way the official postgres image's
# docker-entrypoint.sh starts it, for what a migration depends on:
# - as root it hands PGDATA to the postgres user and runs as that user;
# - POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB are applied ONLY when PGDATA
#   is empty (initdb); a data directory that exists keeps its users and passwords;
# - local socket connections are trusted, TCP ones need the password (scram-sha-256).
#   The official image also trusts TCP from the container's own loopback; this one
#   does not, so a password test here is never kinder than the real thing.
set -eu
if [ "${1:-}" != postgres ]; then
    exec "$@"  # any other command runs as given (tar for a backup, psql...), as in the official image
fi
shift
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec runas postgres "$0" postgres "$@"
fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    : "${POSTGRES_PASSWORD:?the postgres image refuses to initialise a database without POSTGRES_PASSWORD}"
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C >/dev/null
    rm -f "$pwfile"
    printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
    if [ "$database" != postgres ]; then
        pg_ctl -w -o "-c listen_addresses=''" start >/dev/null
        printf 'CREATE DATABASE "%s";\n' "$database" | psql -X -q -v ON_ERROR_STOP=1 -U "$user" -d postgres
        pg_ctl -w -m fast stop >/dev/null
    fi
    echo "postgres stand-in: initialised $PGDATA for user $user, database $database"
fi
exec postgres -c listen_addresses='*' "$@"
