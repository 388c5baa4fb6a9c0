# The cartsync image: one image for the worker, the metrics endpoint and the local sandbox
# (docker-compose.yml picks the command). Build: docker build -t cartsync .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY tasks ./tasks
COPY worker ./worker
COPY sandbox ./sandbox

# EXTRA_PACKAGES adds optional tools to the image, e.g. "flower" for the Flower service.
ARG EXTRA_PACKAGES=""
RUN pip install . ${EXTRA_PACKAGES}

# Never run as root: the worker holds seQura credentials in its environment.
RUN useradd --system --uid 10001 --no-create-home cartsync
USER cartsync

CMD ["celery", "-A", "cartsync.worker", "worker", "--without-gossip", "--without-mingle"]
