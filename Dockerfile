# mend-repro: the pinned container of the artifact (see README, "Three ways to run").
#
#   docker build -t ghcr.io/mend-repro/mend-repro:0.1.0 .
#   docker run --rm --gpus all -v "$PWD/results:/artifact/results" -v "$PWD/figures:/artifact/figures" \
#       ghcr.io/mend-repro/mend-repro:0.1.0                                  # tiny profile: snakemake --cores all
#   docker run ... ghcr.io/mend-repro/mend-repro:0.1.0 --configfile config/paper.yaml   # the paper
#
# Everything is pinned: both images by digest, Python by version (a python-build-standalone build that the pinned
# uv downloads and checks against the sha256 it ships with), every Python package by version and sha256
# (envs/requirements-pypi.lock: the pins of envs/requirements.lock with PyPI's torch, the CUDA build on Linux; `make lock`).
# No apt packages are installed: the base image already has bash and ca-certificates.
#
# CUDA: torch 2.13.0 from PyPI brings its CUDA 13.0 user-space libraries as wheels (cuda-toolkit 13.0.3,
# nvidia-cudnn-cu13, ...), so the base is the CUDA 13.0 runtime image; the host needs a driver for CUDA 13.0
# (>= 580) and the NVIDIA Container Toolkit for `--gpus all`.
#
# The digests below were copied from public Dockerfiles that pin the same tags (several independent projects
# agree on each); they were NOT read from the registries where this file was written (no Docker engine or registry
# there). Verify them before publishing the image:
#   docker buildx imagetools inspect nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
#   docker buildx imagetools inspect ghcr.io/astral-sh/uv:0.11.28

FROM ghcr.io/astral-sh/uv:0.11.28@sha256:0f36cb9361a3346885ca3677e3767016687b5a170c1a6b88465ec14aefec90aa AS uv

FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04@sha256:14d94b039cb94bbd5da559f303b46bc4b0d5d6c24ab1a9d7b186e566ed3400dc

LABEL org.opencontainers.image.title="mend-repro" \
      org.opencontainers.image.description="Reproducibility artifact for Fast Model Editing at Scale (MEND, ICLR 2022)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://github.com/mend-repro/mend-repro"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Caches live under /cache (HF_HOME is a volume) and are writable by any uid, so `docker run --user "$(id -u):$(id -g)"`
# works too. SNAKEMAKE_PROFILE supplies `cores: all` when the command line replaces CMD (e.g. `--configfile ...`).
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    XDG_CACHE_HOME=/cache \
    HF_HOME=/cache/huggingface \
    MPLCONFIGDIR=/cache/matplotlib \
    TRITON_CACHE_DIR=/cache/triton \
    SNAKEMAKE_PROFILE=/etc/xdg/snakemake/container

# Python 3.11 and the venv (its pip is the one bundled with that Python; the lock then pins pip itself).
COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install 3.11.15 \
    && "$(uv python find 3.11.15)" -m venv /opt/venv

WORKDIR /artifact

# The locked packages first (a layer that changes only with the lock), then the package itself, without deps.
COPY envs/requirements-pypi.lock envs/requirements-pypi.lock
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r envs/requirements-pypi.lock

COPY pyproject.toml README.md ./
COPY src/ src/
RUN python -m pip install --no-cache-dir --no-deps --no-build-isolation . \
    && rm -rf build src/*.egg-info

# The artifact itself (Snakefile, config, workflow, tests, ...; .dockerignore leaves out venvs, results, caches).
COPY . .

# A non-root user (mend, uid 10001); the directories Snakemake and the rules write are its own and open to any uid.
RUN groupadd --gid 10001 mend \
    && useradd --uid 10001 --gid 10001 --create-home --shell /bin/bash mend \
    && mkdir -p results figures .snakemake /cache/huggingface /cache/matplotlib /cache/triton \
        /etc/xdg/snakemake/container \
    && printf 'cores: all\n' > /etc/xdg/snakemake/container/config.yaml \
    && chown -R mend:mend results figures .snakemake /cache \
    && chmod 1777 results figures .snakemake /cache /cache/huggingface /cache/matplotlib /cache/triton

VOLUME ["/artifact/results", "/artifact/figures", "/cache/huggingface"]

USER 10001:10001

ENTRYPOINT ["snakemake"]
CMD ["--cores", "all"]
