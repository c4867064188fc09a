# The trainer: python -m trainer.task (train, render). Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t kuka-trainer .
# The GPU image (./build.sh with GPU=1) installs requirements-gpu.txt instead:
#   docker build -f docker/trainer.Dockerfile --build-arg REQUIREMENTS=requirements-gpu.txt ...
FROM python:3.11.11-slim-bookworm
ARG REQUIREMENTS=requirements.txt

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp \
    HOME=/tmp

WORKDIR /app
COPY requirements.txt requirements-gpu.txt constraints.txt ./
# dumb-init runs as PID 1: it forwards SIGTERM to the trainer or TensorBoard (a
# PID 1 without a handler ignores it) and reaps the env processes' leftovers.
RUN pip install -r "$REQUIREMENTS" -c constraints.txt dumb-init==1.2.5.post1

COPY trainer/ trainer/
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin trainer
USER 10001

ENTRYPOINT ["dumb-init", "--", "python", "-m", "trainer.task"]
