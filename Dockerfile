# Kasparro: the API (default), the Prefect worker, or any `kasparro` command; compose.yaml runs
# the whole stack (Prefect server, worker, API) on a shared volume.
#   docker build -t kasparro .
#   docker run --rm -v kasparro-data:/app/data/local kasparro ingest --replay data/demo
#   docker run --rm -p 8000:8000 -v kasparro-data:/app/data/local kasparro
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY flows ./flows
COPY store ./store
COPY web ./web
COPY kasparro ./kasparro
RUN uv sync --locked --no-dev

# The runtime has no uv and no compiler: the virtual environment and the sources only.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 kasparro
WORKDIR /app
COPY --from=build /app /app
COPY data/demo ./data/demo
COPY data/asset_overrides.csv ./data/asset_overrides.csv
COPY prefect.yaml ./
RUN mkdir -p data/local && chown -R kasparro data/local
USER 10001
# KASPARRO_HOME: where a worker's flow runs execute (prefect.yaml's pull step).
ENV PATH=/app/.venv/bin:$PATH \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_LOGGING_EXTRA_LOGGERS=flows,store \
    KASPARRO_HOME=/app \
    KASPARRO_DATA_DIR=/app/data/local \
    PREFECT_LOCAL_STORAGE_PATH=/app/data/local/prefect-results \
    KASPARRO_API_HOST=0.0.0.0
EXPOSE 8000
# The API answers /ping once it serves; compose gives the server and the worker checks of their own.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ping', timeout=4)"]
ENTRYPOINT ["kasparro"]
CMD ["serve"]
