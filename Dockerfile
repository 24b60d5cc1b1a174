# bourse: the exchange server, built from uv.lock and run as a non-root user.
# Configuration comes only from BOURSE_* environment variables (see README).

# --- build: resolve the locked dependencies and the project into /app/.venv
FROM python:3.11-slim-bookworm AS build
COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-install-project
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --locked --no-dev --no-editable

# --- runtime: the virtual environment alone, on the same slim base
FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 bourse \
    && useradd --system --uid 10001 --gid bourse --home-dir /data --no-create-home bourse \
    && mkdir /data \
    && chown bourse:bourse /data
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    BOURSE_HOST=0.0.0.0 \
    BOURSE_PORT=12345 \
    BOURSE_HTTP_PORT=8080 \
    BOURSE_DATA_DIR=/data/bourse-data
WORKDIR /data
VOLUME /data
USER 10001:10001
EXPOSE 12345 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["bourse", "health", "--timeout", "4"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["bourse"]
CMD ["serve"]
