# SoulSeer: one image for the web app, the signaling WebSocket and the media relay.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SOULSEER_HOST=0.0.0.0 SOULSEER_PORT=8080 SOULSEER_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY relay ./relay
COPY api ./api
COPY billing ./billing
COPY web ./web
COPY config ./config
RUN pip install . && useradd --system --uid 10001 --home /app soulseer \
    && mkdir -p /data && chown soulseer /data

USER soulseer
# HTTP (pages, REST, signaling WebSocket, /metrics).
EXPOSE 8080/tcp
# Media: the relay's ICE/DTLS/SRTP UDP sockets use kernel-chosen ephemeral ports (aioice has no port
# range; see README "ICE, ports and NAT"), so publishing ports does not work: run with host networking
# (as docker-compose.yml does), or give the relay a TURN server.
VOLUME ["/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
CMD ["soulseer", "serve"]
