# Worker (and job) image for plankton-jobs: Dask workers on Kubernetes (Dask Kubernetes
# operator) or on HPC through Apptainer (`apptainer build plankton-jobs.sif
# docker-daemon://plankton-jobs:latest`). Installed as the README says: a virtual
# environment and `pip install .`, plus the s3 and slurm extras.
#   docker build -t plankton-jobs .
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml README.md cluster.yaml ./
COPY plankton_store ./plankton_store
COPY jobs ./jobs
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install '.[s3,slurm]' \
    && rm -rf /src/build

RUN useradd --create-home --uid 1000 plankton
USER plankton
WORKDIR /home/plankton

# The Dask operator and Apptainer give their own command (dask worker ...);
# `docker run plankton-jobs plankton-jobs build-store ...` runs a job.
CMD ["plankton-jobs", "--help"]
