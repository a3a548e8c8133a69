FROM {base} AS install
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
       --find-links /tmp/wheels -r /tmp/wheels/requirements.txt

FROM {base}
COPY --from=install /opt/venv /opt/venv
COPY reaperd /app/reaperd
RUN python3 -m compileall -q /app/reaperd
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RYUK_PORT=8080 \
    RYUK_CONNECTION_TIMEOUT=60s \
    RYUK_RECONNECTION_TIMEOUT=10s \
    REAPER_IDLE_TIMEOUT=60s
WORKDIR /app
# root, as Ryuk runs: the engine's socket is root's (and its group's) only
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "reaperd"]
