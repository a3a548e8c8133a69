FROM {base} AS install
COPY wheels /tmp/wheels
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \
       --find-links /tmp/wheels -r /tmp/wheels/requirements.txt \
    && /opt/venv/bin/pip uninstall --quiet --yes --disable-pip-version-check setuptools pip

FROM {base}
COPY --from=install /opt/venv /opt/venv
COPY services /app/services
RUN python3 -m compileall -q /app/services
ENV PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 65534:65534
EXPOSE 8080
ENTRYPOINT ["python3", "-m", "services"]
CMD ["backend"]
