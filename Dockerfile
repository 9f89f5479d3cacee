# ticketpost: one image for every role (`ticketpost up|smtp|worker|imap|api|migrate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY core ./core
COPY ticketpost ./ticketpost
COPY models ./models
COPY routing ./routing
COPY ingest ./ingest
COPY admin_api ./admin_api
RUN pip install . \
    && useradd --system --uid 10001 --home /app ticketpost \
    && chown -R ticketpost /app
USER ticketpost

EXPOSE 2525 8080
STOPSIGNAL SIGTERM
CMD ["ticketpost", "up"]
