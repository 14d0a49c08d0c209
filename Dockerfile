# syntax=docker/dockerfile:1
# The gppscale image: the `gppscale` command line plus dask/distributed, for the runner, the Dask scheduler
# and the workers of deploy/helm/gppscale (all pods of a run share one image, so Dask versions match).
#
#   docker build -t ghcr.io/gppscale/gppscale:0.1.0 .                                # CPU (default)
#   docker build --build-arg VARIANT=cuda -t ghcr.io/gppscale/gppscale:0.1.0-cuda .  # GPU workers
#
# VARIANT picks the torch build (torch==2.13.0 either way, as pyproject.toml pins it):
#   cpu:  the CPU wheel from download.pytorch.org/whl/cpu (about 200 MB, no CUDA libraries).
#   cuda: the default PyPI wheel, which pulls CUDA, cuDNN and NCCL as nvidia-* wheels. The host only needs
#         the NVIDIA driver (the Kubernetes device plugin / container toolkit mounts it), so both variants
#         share this python:3.11 slim base instead of an nvidia/cuda base with a second Python install.
#
# The base is pinned by tag (Python 3.11, Debian bookworm). It is not pinned by digest: the digest could
# not be checked from where this file was written (no registry access); pin it once verified, e.g. with
# `docker buildx imagetools inspect python:3.11-slim-bookworm`, as FROM python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG VARIANT=cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
# torch first, in its own layer: it is by far the largest and changes least. `pip install .` below then
# finds torch==2.13.0 satisfied (2.13.0+cpu matches ==2.13.0) and keeps this build.
RUN case "${VARIANT}" in \
      cpu) pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu ;; \
      cuda) pip install --no-cache-dir torch==2.13.0 ;; \
      *) echo "VARIANT must be cpu or cuda, not '${VARIANT}'" >&2; exit 1 ;; \
    esac
WORKDIR /src
# Only what the wheel is built from (.dockerignore keeps the rest of the context small).
COPY pyproject.toml README.md ./
COPY src ./src
# A non-editable install of the project (this folder, /src) with its Kubernetes extra; dependency versions
# are those that pyproject.toml allows (a lock file would pin them). The absolute path tells hadolint
# (DL3013) that this is local source, not an unpinned package from an index.
RUN pip install --no-cache-dir "/src[k8s]" \
    && python -c "import gppscale, dask_kubernetes, torch; print('gppscale', gppscale.__version__, 'torch', torch.__version__)"

FROM ${PYTHON_IMAGE} AS runtime
ARG VARIANT=cpu
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="gppscale" \
      org.opencontainers.image.description="Cloud-native downscaling of coarse GPP/NPP to 30 m (${VARIANT} build)" \
      org.opencontainers.image.source="https://github.com/gppscale/gppscale" \
      org.opencontainers.image.url="https://github.com/gppscale/gppscale" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      io.gppscale.variant="${VARIANT}"
# The non-root user the Helm chart runs as (runAsUser/runAsGroup 10001); no login shell, no sudo.
RUN groupadd --system --gid 10001 gppscale \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/gppscale --create-home \
       --shell /usr/sbin/nologin gppscale
# The builder's venv at the same path (same base image, same /usr/local/bin/python), owned by root so
# the runtime user cannot modify it.
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/gppscale
WORKDIR /home/gppscale
USER 10001:10001
# A batch image (a run, or a Dask scheduler/worker probed by Kubernetes), so no HEALTHCHECK.
# The chart overrides the command with `dask scheduler` / `dask worker` for those pods.
ENTRYPOINT ["gppscale"]
CMD ["--help"]
