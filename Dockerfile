# linkhub: one process, one SQLite file on the /data volume.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LINKHUB_DB=/data/linkhub.db \
    LINKHUB_HOST=0.0.0.0 \
    LINKHUB_PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY linkhub ./linkhub
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin linkhub \
    && mkdir -p /data && chown linkhub:linkhub /data

USER linkhub
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('LINKHUB_PORT', '8080')}/healthz\", timeout=2).status == 200 else 1)"]

# SIGTERM (docker stop) finishes in-flight requests (up to 10 s) and commits queued writes
# before exit: run with `docker run --stop-timeout 30` (Compose: stop_grace_period: 30s), as
# Docker's default 10 s can SIGKILL it mid-drain (docs/deployment.md).
STOPSIGNAL SIGTERM
CMD ["linkhub", "serve", "--host", "0.0.0.0"]
