# The cartsync image: one image for the worker, the metrics endpoint and the local sandbox
# (docker-compose.yml picks the command). Build: docker build -t cartsync .
#
# The first stage builds the wheel and exports the lock's production set (no extras, with
# hashes); the image installs exactly that, so it runs the versions CI tested.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Keep in step with UV_VERSION in the Makefile.
RUN pip install uv==0.13.9
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY config ./config
COPY tasks ./tasks
COPY worker ./worker
COPY sandbox ./sandbox
RUN uv export --frozen --no-dev --no-emit-project --format requirements-txt \
        --output-file /dist/requirements.txt \
    && uv build --wheel --out-dir /dist

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /dist /tmp/dist
RUN pip install --require-hashes --no-deps -r /tmp/dist/requirements.txt \
    && pip install --no-deps /tmp/dist/cartsync-*.whl \
    && rm -rf /tmp/dist

# EXTRA_PACKAGES adds optional tools to the image, e.g. "flower" for the Flower service
# (not in the lock: an operator's tool, not part of what cartsync runs).
ARG EXTRA_PACKAGES=""
RUN if [ -n "${EXTRA_PACKAGES}" ]; then pip install ${EXTRA_PACKAGES}; fi

# Never run as root: the worker holds seQura credentials in its environment.
RUN useradd --system --uid 10001 --no-create-home cartsync
USER cartsync
WORKDIR /home/cartsync

CMD ["celery", "-A", "cartsync.worker", "worker", "--without-gossip", "--without-mingle"]
