# Jupyter with the repository, kubectl and the Google Cloud CLI, for demo/.
#   docker build -f docker/notebook.Dockerfile -t kuka-notebook .
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The Google Cloud CLI and kubectl from Google's Debian repository. Not pinned:
# Debian replaces pinned versions with security updates, and the CLI moves weekly.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg make git \
    && curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
        | gpg --dearmor -o /usr/share/keyrings/cloud.google.gpg \
    && echo "deb [signed-by=/usr/share/keyrings/cloud.google.gpg] https://packages.cloud.google.com/apt cloud-sdk main" \
        > /etc/apt/sources.list.d/google-cloud-sdk.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends google-cloud-cli kubectl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /home/jovyan/work
COPY requirements.txt requirements-dev.txt constraints.txt ./
RUN pip install -r requirements.txt -r requirements-dev.txt -c constraints.txt
COPY . .
RUN useradd --uid 10001 --create-home --home-dir /home/jovyan jovyan \
    && chown -R 10001:10001 /home/jovyan
USER 10001

EXPOSE 8888
ENTRYPOINT ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "demo/demo.ipynb"]
