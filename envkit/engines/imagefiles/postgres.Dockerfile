FROM {base}
ENV PATH=/usr/lib/postgresql/{pg_major}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PGDATA=/var/lib/postgresql/data \
    LANG=C.UTF-8
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p "$PGDATA" /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 "$PGDATA" && chmod 755 /usr/local/bin/docker-entrypoint.sh
USER postgres
# Initialise the cluster now, not at every start (the entrypoint finishes it per container).
RUN initdb --username=postgres --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 \
        --locale=C.UTF-8 --no-sync -D "$PGDATA" >/dev/null \
    && printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf" \
    && touch "$PGDATA/.envkit-template"
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["postgres"]
