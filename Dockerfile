# Kasparro: the API (default) or any `kasparro` command, e.g.
#   docker build -t kasparro .
#   docker run --rm -v kasparro-data:/app/data/local kasparro ingest --replay data/demo
#   docker run --rm -p 8000:8000 -v kasparro-data:/app/data/local kasparro
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY flows ./flows
COPY store ./store
COPY web ./web
COPY kasparro ./kasparro
RUN uv sync --locked --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 kasparro
WORKDIR /app
COPY --from=build /app /app
COPY data/demo ./data/demo
COPY data/asset_overrides.csv ./data/asset_overrides.csv
COPY prefect.yaml ./
RUN mkdir -p data/local && chown -R kasparro data/local
USER kasparro
ENV PATH=/app/.venv/bin:$PATH \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    KASPARRO_DATA_DIR=/app/data/local \
    KASPARRO_API_HOST=0.0.0.0
EXPOSE 8000
ENTRYPOINT ["kasparro"]
CMD ["serve"]
