#!/bin/bash
# Starts PostgreSQL on $PGDATA, creating the cluster first when the directory is empty:
#   role and database $POSTGRES_DB / $POSTGRES_USER (both "hubstream" unless set), password
#   $POSTGRES_PASSWORD (required on first start), owner of the database.
# Authentication: local socket connections are trusted (they come from inside this container);
# TCP connections from the networks this container is attached to (pg_hba's "samenet": the
# compose network) must give the password (scram-sha-256, PostgreSQL 15's default; psqlODBC
# and libpq both speak it); everything else is refused.
set -euo pipefail
: "${PGDATA:?}"
db=${POSTGRES_DB:-hubstream}
user=${POSTGRES_USER:-hubstream}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  : "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD for the first start (it initialises the cluster)}"
  echo "pg-entrypoint: initialising $PGDATA"
  initdb -D "$PGDATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
         --auth-local=trust --auth-host=reject >/dev/null
  {
    echo "# compose network (added by pg-entrypoint.sh): password required"
    echo "host all all samenet scram-sha-256"
  } >> "$PGDATA/pg_hba.conf"
  cat >> "$PGDATA/postgresql.conf" <<CONF
listen_addresses = '*'
unix_socket_directories = '/var/run/postgresql'
CONF
  # A private start on the socket only, to create the role and the database.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w -t 60 start >/dev/null
  psql -v ON_ERROR_STOP=1 -q -h /var/run/postgresql -U postgres -d postgres \
       -v user="$user" -v pw="$POSTGRES_PASSWORD" -v db="$db" <<'SQL'
CREATE ROLE :"user" LOGIN PASSWORD :'pw';
CREATE DATABASE :"db" OWNER :"user";
SQL
  pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
  echo "pg-entrypoint: database '$db' owned by '$user' created"
fi
exec postgres -D "$PGDATA" "$@"
