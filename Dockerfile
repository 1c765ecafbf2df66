# The image of every LAPOR service, one build argument apart. From the repository root:
#   docker build --build-arg SERVICE=intake  -t lapor/intake .
#   docker build --build-arg SERVICE=routing -t lapor/routing .
#   docker build --build-arg SERVICE=notify  -t lapor/notify .
# (docker-compose.yml passes SERVICE for each of its services.)
#
# How SERVICE picks an image: everything the services share (the venv, the user) is built
# once, then one small stage per service sets what differs (listen addresses, ports,
# HEALTHCHECK, ENTRYPOINT) and the last line `FROM service-${SERVICE}` selects it. Each
# service stage is static and readable, and the entrypoint is the service itself in exec form
# (no shell, no launcher between the container and the process, signals reach it directly).
# The venv stage does not see SERVICE, so the three builds share its cache.
#
# The base is pinned to a patch release and its digest, so a rebuild of the same commit starts
# from the same bytes. Bump tag and digest together, deliberately (docs/decisions.md).
ARG PYTHON_BASE=python:3.11.7-slim-bookworm@sha256:d11b9bd5e49ea7401753d78f4d3b56f3aec952b85b49bcae88981f0452818e0b
# intake, routing or notify; no default image: "unset" selects the stage that says so.
ARG SERVICE=unset


# A build without SERVICE selects this stage (see the last line) and stops here with a message
# saying what to pass. The legacy builder runs every stage in order, so it also stops here on
# a misspelt SERVICE; BuildKit stops earlier on one, naming the missing stage service-<name>.
FROM ${PYTHON_BASE} AS service-unset
ARG SERVICE
RUN case "$SERVICE" in \
      intake|routing|notify) ;; \
      unset|"") echo "SERVICE is not set: docker build --build-arg SERVICE=intake|routing|notify ." >&2; exit 1 ;; \
      *) echo "SERVICE=$SERVICE is not a LAPOR service: use intake, routing or notify" >&2; exit 1 ;; \
    esac


FROM ${PYTHON_BASE} AS venv

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# constraints.txt is the lock the Makefile and CI install from; the image must not drift from it.
COPY pyproject.toml constraints.txt ./
COPY protos/ protos/
COPY lapor/ lapor/
COPY services/ services/
RUN pip install --no-cache-dir -c constraints.txt .


# The classifier, built reproducibly from the corpus the wheel carries (~10 s), so routing
# starts with a model instead of training one at every start. Retraining with the officers'
# corrections writes a newer version to a volume mounted over ROUTING_MODEL_DIR
# (docs/classifier.md). Only routing's stage copies it, so BuildKit skips this stage for the
# others; the legacy builder runs every stage, hence the condition, and the empty directory
# keeps routing's COPY valid in those builds.
FROM venv AS model
ARG SERVICE
RUN if [ "$SERVICE" = routing ]; then \
      python -m services.routing model build --no-corrections --out /opt/lapor-model; \
    else \
      mkdir -p /opt/lapor-model; \
    fi


FROM ${PYTHON_BASE} AS runtime

RUN groupadd --system --gid 10001 lapor \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin lapor

# Only the venv crosses over: the service runs from the installed wheel, so no source tree,
# pip cache or build tool ends up in the image.
COPY --from=venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# The SQLite fallback (var/ beside the installed package) is unwritable here on purpose: a
# container started without its DATABASE_URL fails at once instead of keeping reports in a
# file that dies with the container.
WORKDIR /app

# Each service listens on every interface: the 127.0.0.1 defaults suit a laptop, not a
# container network. Ports match deploy/k8s and docker-compose.yml.

FROM runtime AS service-intake
# Attachments on local disk (without S3): a volume mounted here takes this ownership.
RUN mkdir -p /var/lib/lapor/attachments && chown 10001:10001 /var/lib/lapor/attachments
ENV INTAKE_HOST=0.0.0.0 \
    INTAKE_PORT=8080 \
    INTAKE_METRICS_HOST=0.0.0.0 \
    INTAKE_METRICS_PORT=9100 \
    INTAKE_ATTACHMENTS_DIR=/var/lib/lapor/attachments
USER 10001:10001
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "services.infra.healthcheck", "http://127.0.0.1:9100/healthz"]
ENTRYPOINT ["python", "-m", "services.intake"]


FROM runtime AS service-routing
COPY --from=model /opt/lapor-model /opt/lapor-model
# Where `accounts ensure-service` writes intake's token when run as a one-shot container
# (docker-compose's routing-accounts): a named volume mounted here takes this ownership.
RUN mkdir -p /run/lapor && chown 10001:10001 /run/lapor
ENV ROUTING_LISTEN=0.0.0.0:50051 \
    ROUTING_MODEL_DIR=/opt/lapor-model \
    ROUTING_METRICS_HOST=0.0.0.0 \
    ROUTING_METRICS_PORT=9101
USER 10001:10001
EXPOSE 50051 9101
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "services.infra.healthcheck", "grpc://127.0.0.1:50051"]
ENTRYPOINT ["python", "-m", "services.routing"]


FROM runtime AS service-notify
ENV NOTIFY_METRICS_HOST=0.0.0.0 \
    NOTIFY_METRICS_PORT=9102
USER 10001:10001
EXPOSE 9102
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "services.infra.healthcheck", "http://127.0.0.1:9102/healthz"]
ENTRYPOINT ["python", "-m", "services.notify"]


# The image: the stage of the service asked for (service-unset, which fails, when none is).
FROM service-${SERVICE}
ARG SERVICE
LABEL org.opencontainers.image.title="lapor-${SERVICE}"
