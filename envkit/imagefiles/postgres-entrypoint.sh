#!/bin/sh
# Entrypoint of envkit's locally built PostgreSQL image. It honours the same
# variables as the official image: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB
# (and POSTGRES_HOST_AUTH_METHOD=trust), initialises PGDATA on first start with
# a server reachable only through its socket, then starts the real server.
set -eu

if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- postgres "$@"
fi
if [ "$1" != "postgres" ]; then
    exec "$@"
fi
shift

POSTGRES_USER="${POSTGRES_USER:-postgres}"
POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
AUTH="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
SOCKETS=/var/run/postgresql

if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$AUTH" != "trust" ]; then
    echo "error: POSTGRES_PASSWORD is not set. Set it (or POSTGRES_HOST_AUTH_METHOD=trust) and start again." >&2
    exit 1
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host="$AUTH" --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
    rm -f "$pwfile"
    printf 'host all all all %s\n' "$AUTH" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" -w start >/dev/null
    if [ "$POSTGRES_DB" != "postgres" ]; then
        # psql interpolates :"db" (quoted identifier) only in scripts read from stdin
        echo 'CREATE DATABASE :"db";' | psql -v ON_ERROR_STOP=1 -h "$SOCKETS" \
            --username "$POSTGRES_USER" --dbname postgres --set db="$POSTGRES_DB" -q
    fi
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) echo "running $f"; . "$f" ;;
            *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 -h "$SOCKETS" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -q -f "$f" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    echo "PostgreSQL init process complete; ready for start up."
fi

exec postgres -c listen_addresses='*' -c unix_socket_directories="$SOCKETS" "$@"
