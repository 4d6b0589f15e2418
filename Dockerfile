# syntax=docker/dockerfile:1
# Multi-stage: install the locked versions (uv.lock) into a virtualenv, then copy it into a slim
# runtime image. Images are pinned by version: a rebuild gets the Python that was tested.
FROM python:3.12.12-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/chorus UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1
# The same uv as the Makefile's UV_VERSION.
RUN pip install 'uv==0.13.9'
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY app ./app
# No `embedded` extra: containers use a real MongoDB (see docker-compose.yml). --frozen: exactly
# the lock, and fail rather than resolve anew; --no-editable: the venv stands on its own.
RUN uv sync --frozen --no-editable --no-dev

FROM python:3.12.12-slim
LABEL org.opencontainers.image.title="chorus" \
      org.opencontainers.image.description="A fleet of Discord music bots in one process"
ENV PATH=/opt/chorus/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=3000
RUN useradd --system --uid 10001 --home-dir /srv/chorus --create-home chorus
COPY --from=build /opt/chorus /opt/chorus
# Non-root from here on: the service needs no privilege, only the network.
USER chorus
WORKDIR /srv/chorus
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HTTP_PORT\", \"3000\")}/health', timeout=4)"
# `chorus serve` runs uvicorn with exactly one worker: the bots live in that process.
# Operator commands run in the same image: `docker compose exec chorus chorus bots list`.
STOPSIGNAL SIGTERM
CMD ["chorus", "serve"]
