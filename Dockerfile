# One image for every foodflow service; docker-compose.yaml picks the service with its command
# (`python -m foodflow.<service>`). See docs/docker.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged user that runs the services.
RUN groupadd --system --gid 10001 foodflow \
    && useradd --system --uid 10001 --gid foodflow --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin foodflow

WORKDIR /app

# 1. The locked runtime dependencies (their own layer: it only changes when the lock does).
#    requirements.lock holds what the services import and nothing else: no dev or ops tools.
COPY requirements.lock ./
RUN pip install --requirement requirements.lock

# 2. The package itself, without re-resolving dependencies.
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-deps . && rm -rf /app/src

# 3. Runtime files. The package is installed into site-packages, so the defaults that point next
#    to the source checkout do not apply: name the rules file explicitly.
COPY config ./config
ENV PRICING_RULES_FILE=/app/config/pricing_rules.json \
    FOODFLOW_STATE_DIR=/tmp/foodflow \
    FOODFLOW_SERVICE_HOST=0.0.0.0

USER foodflow

EXPOSE 8001 8002 8005 8006
CMD ["python", "-m", "foodflow.order_manager"]
