# kraken-copytrader: the copy-trading daemon as a container (Railway, or any Docker host).
#
#   docker build -t kraken-copytrader .
#   docker run --rm -v "$PWD/data:/app/data" --env-file .env kraken-copytrader
#   docker run --rm kraken-copytrader /app/start.sh --paper --duration 60
#
# Reproducible: the base image is an exact Python release, and every Python package (the
# dependencies and the build backend) is installed at the version and sha256 that
# requirements.lock records (scripts/lock.sh writes it from pyproject.toml). Nothing is resolved
# at build time, so a rebuild or redeploy installs the same libraries.
#
# The container starts as root only long enough for start.sh to hand the data folder (a Railway
# volume or bind mount arrives owned by root) to uid 10001; the daemon itself runs as 10001.
# No secrets here: API keys are runtime variables only.
FROM python:3.11.17-slim-bookworm

# Unbuffered output: log lines reach Railway at once and are not lost on SIGKILL.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COPYTRADER_IMAGE=1 \
    COPYTRADER_RUN_UID=10001 \
    COPYTRADER_RUN_GID=10001

# tini reaps zombies and forwards signals; setpriv (util-linux, part of the base) drops root.
# Debian stable only takes security fixes, so an exact version pin would just break the build
# after the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 copytrader \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin copytrader

WORKDIR /app

# Locked dependencies in their own layer: rebuilt only when requirements.lock changes.
# --require-hashes refuses any file whose sha256 is not in the lock; --no-deps installs exactly
# the lock's list, which already holds every transitive dependency.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

# The project itself, built from source with the locked setuptools: no index (nothing
# downloaded), no build isolation (no unpinned build backend), no dependencies (all in place).
COPY pyproject.toml README.md start.sh ./
COPY config ./config
COPY src ./src
RUN pip install --no-index --no-build-isolation --no-deps . \
    && rm -rf build src \
    && chmod 0755 /app/start.sh

# Healthy = copying (MASTER read recently, a user ready, the kill switch off). The command asks
# the daemon's /healthz when PORT or COPYTRADER_STATUS_PORT is set, else decides from the
# health.json the daemon rewrites every 5 s (service/health.py). Railway ignores HEALTHCHECK and
# calls /healthz itself (.railway/railway.ts); Docker and other hosts use this.
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "copytrader.service.health"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/app/start.sh"]
