# syntax=docker/dockerfile:1
# One image for every parley process; docker-compose.yml picks the command:
#   receiver  gunicorn "webhook:create_app()" --config gunicorn.conf.py   (the default CMD;
#             the config file carries the recommended worker class and threads)
#   worker    celery -A worker worker
#   beat      celery -A celery_beat beat        (exactly one)
#   migrate   alembic upgrade head && flask --app webhook templates load templates/
# tests/deploy/test_compose.py checks this file; docs/OPERATIONS.md explains the choices.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged uid/gid: volumes and Kubernetes securityContext can rely on it.
RUN groupadd --system --gid 10001 parley \
    && useradd --system --uid 10001 --gid parley --home-dir /home/parley --create-home \
       --shell /usr/sbin/nologin parley

WORKDIR /app

# Dependencies in their own layer: rebuilt only when requirements.txt changes.
# psycopg[binary] ships its own libpq, so no compiler or system packages are needed.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

# Source last (what .dockerignore lets through), owned by root: the app cannot rewrite
# itself. var/ is the only writable directory (Beat's schedule, metrics files).
COPY . .
RUN mkdir -p /app/var && chown parley:parley /app/var

USER parley:parley
EXPOSE 8000

# The receiver's liveness; worker and beat override it in docker-compose.yml.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

# Worker class and threads per process: gunicorn.conf.py; --workers sizes it.
CMD ["gunicorn", "webhook:create_app()", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
