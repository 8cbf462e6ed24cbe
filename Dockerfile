# fhircac service image: `docker build -t fhircac . && docker run -p 8080:8080 fhircac`
# The app is installed root-owned and read-only to the service user; everything it writes (the CDS
# feedback and JWT-replay store, the worker's state) goes to FHIRCAC_DATA_DIR, a volume it owns.
# tests/integration/test_container_layout.py rebuilds this layout without Docker and serves from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FHIRCAC_HOST=0.0.0.0 \
    FHIRCAC_PORT=8080 \
    FHIRCAC_DATA_DIR=/var/lib/fhircac

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY fhircac ./fhircac
RUN pip install -c constraints.txt . \
    && groupadd --system --gid 10001 fhircac \
    && useradd --system --uid 10001 --gid 10001 --no-create-home fhircac \
    && mkdir -p /var/lib/fhircac \
    && chown 10001:10001 /var/lib/fhircac

USER 10001:10001
VOLUME ["/var/lib/fhircac"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:'+os.environ['FHIRCAC_PORT']+'/healthz')"
CMD ["fhircac", "serve"]
