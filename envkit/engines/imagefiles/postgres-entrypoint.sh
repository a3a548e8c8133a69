#!/bin/sh
# Entrypoint of envkit's locally built PostgreSQL image. It honours the same
# variables as the official image: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB
# (and POSTGRES_HOST_AUTH_METHOD=trust).
#
# The image carries a cluster initialised at build time in /var/lib/postgresql/data
# (bootstrap superuser "postgres", no password), so a start only creates the role
# and database, in single-user mode, before the server listens: about 0.4 s
# instead of a 1.3 s initdb. When PGDATA points elsewhere and is empty (e.g. a
# directory on a tmpfs mount), that cluster is copied there first; an empty PGDATA
# without it (e.g. a fresh volume over the default path) gets a full initdb.
set -eu

BUILT_CLUSTER=/var/lib/postgresql/data

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
TEMPLATE_MARK="$PGDATA/.envkit-template"

if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$AUTH" != "trust" ]; then
    echo "error: POSTGRES_PASSWORD is not set. Set it (or POSTGRES_HOST_AUTH_METHOD=trust) and start again." >&2
    exit 1
fi

ident() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"; }
literal() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/''/g")"; }

if [ ! -s "$PGDATA/PG_VERSION" ] && [ "$PGDATA" != "$BUILT_CLUSTER" ] \
    && [ -f "$BUILT_CLUSTER/.envkit-template" ]; then
    if ! { mkdir -p "$PGDATA" && chmod 700 "$PGDATA"; } 2>/dev/null; then
        echo "error: PGDATA=$PGDATA is not a directory the postgres user can own. Point PGDATA at a subdirectory of the mount (e.g. PGDATA=/run/pgdata/data for a tmpfs on /run/pgdata) and start again." >&2
        exit 1
    fi
    cp -a "$BUILT_CLUSTER/." "$PGDATA/"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    initdb --username=postgres --auth-local=trust --auth-host="$AUTH" --encoding=UTF8 \
        --locale=C.UTF-8 --no-sync -D "$PGDATA" >/dev/null
    printf 'host all all all %s\n' "$AUTH" >> "$PGDATA/pg_hba.conf"
    touch "$TEMPLATE_MARK"
fi

if [ -f "$TEMPLATE_MARK" ]; then
    if [ "$AUTH" != "scram-sha-256" ]; then
        sed -i "s/scram-sha-256\$/$AUTH/" "$PGDATA/pg_hba.conf"
    fi
    user="$(ident "$POSTGRES_USER")"
    if [ "$POSTGRES_USER" = "postgres" ]; then
        role="ALTER ROLE postgres PASSWORD $(literal "${POSTGRES_PASSWORD:-}");"
    else
        role="CREATE ROLE $user SUPERUSER LOGIN PASSWORD $(literal "${POSTGRES_PASSWORD:-}");"
    fi
    database=""
    if [ "$POSTGRES_DB" != "postgres" ]; then
        database="CREATE DATABASE $(ident "$POSTGRES_DB") OWNER $user;"
    fi
    # One statement per line; exit_on_error turns any failure into a non-zero exit.
    printf '%s\n%s\n' "$role" "$database" \
        | postgres --single -D "$PGDATA" -c exit_on_error=on postgres >/dev/null
    rm -f "$TEMPLATE_MARK"
    if [ -n "$(ls -A /docker-entrypoint-initdb.d 2>/dev/null)" ]; then
        pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$SOCKETS" -w start >/dev/null
        for f in /docker-entrypoint-initdb.d/*; do
            case "$f" in
                *.sh) echo "running $f"; . "$f" ;;
                *.sql) echo "running $f"; psql -v ON_ERROR_STOP=1 -h "$SOCKETS" --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -q -f "$f" ;;
                *) ;;
            esac
        done
        pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    echo "PostgreSQL init process complete; ready for start up."
fi

exec postgres -c listen_addresses='*' -c unix_socket_directories="$SOCKETS" "$@"
