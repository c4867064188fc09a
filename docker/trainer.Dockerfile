# The trainer: python -m trainer.task (train, render). Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t kuka-trainer .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MPLCONFIGDIR=/tmp

WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

COPY trainer/ trainer/
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin trainer
USER 10001

ENTRYPOINT ["python", "-m", "trainer.task"]
