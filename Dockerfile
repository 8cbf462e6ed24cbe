# fhircac service image: `docker build -t fhircac . && docker run -p 8080:8080 fhircac`
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FHIRCAC_HOST=0.0.0.0 \
    FHIRCAC_PORT=8080

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY fhircac ./fhircac
RUN pip install -c constraints.txt . \
    && useradd --system --uid 10001 --no-create-home fhircac

USER fhircac
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:'+os.environ['FHIRCAC_PORT']+'/healthz')"
CMD ["fhircac", "serve"]
