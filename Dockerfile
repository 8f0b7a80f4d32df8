# jobqueue in a container: the installed package (`jobqueue serve`), run as an unprivileged user, with
# its SQLite database on the /data volume. Dependencies are pinned in docker/requirements.txt.
#   docker build -t jobqueue .
#   docker run -p 127.0.0.1:5000:5000 -v jobqueue-data:/data -e JOBQUEUE_API_TOKEN=... jobqueue

# Build the wheel: the sources and the build tools stay in this stage.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml setup.cfg README.md ./
COPY jobqueue ./jobqueue
COPY handlers ./handlers
COPY static ./static
COPY templates ./templates
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    JOBQUEUE_HOST=0.0.0.0 \
    JOBQUEUE_PORT=5000 \
    JOBQUEUE_DATABASE=sqlite:////data/jobqueue.db
COPY docker/requirements.txt /tmp/requirements.txt
COPY --from=build /wheels /tmp/wheels
# pycurl's wheel carries its own libcurl: no system packages are needed
RUN pip install --no-cache-dir -r /tmp/requirements.txt \
    && pip install --no-cache-dir --no-deps /tmp/wheels/*.whl \
    && rm -rf /tmp/wheels /tmp/requirements.txt \
    && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home jobqueue \
    && mkdir /data && chown jobqueue:jobqueue /data
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('JOBQUEUE_PORT', '5000'); sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
ENTRYPOINT ["jobqueue", "serve"]
