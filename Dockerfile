# Waterline service image: the API (`waterline serve`) by default; the same image runs the
# collectors (`waterline collector`) and the daemon. Build: docker build -t waterline .
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/waterline
WORKDIR /src
# Only what the package needs (see .dockerignore): no tests, no local database or tokens.
COPY pyproject.toml README.md constraints.txt ./
COPY app ./app
COPY collectors ./collectors
COPY tuning ./tuning
COPY fabricsim ./fabricsim
COPY migrations ./migrations
RUN /opt/waterline/bin/pip install . -c constraints.txt \
    && /opt/waterline/bin/waterline --help >/dev/null

FROM python:3.11-slim
ENV PATH=/opt/waterline/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/var/lib/waterline/var/numba-cache \
    WATERLINE_HOST=0.0.0.0 \
    WATERLINE_ADMIN_TOKEN_FILE=/var/lib/waterline/state/admin.token
RUN groupadd --system --gid 10001 waterline \
    && useradd --system --uid 10001 --gid waterline --home-dir /var/lib/waterline \
       --shell /usr/sbin/nologin waterline \
    && mkdir -p /var/lib/waterline/state /var/lib/waterline/var \
    && chown -R waterline:waterline /var/lib/waterline \
    && chmod 0700 /var/lib/waterline/state
COPY --from=build /opt/waterline /opt/waterline
# The default SQLite URL (sqlite:///./var/waterline.db) lands in /var/lib/waterline/var.
WORKDIR /var/lib/waterline
USER waterline:waterline
EXPOSE 8000 9108
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('WATERLINE_PORT', '8000'), timeout=4)"]
# Migrate (idempotent), load the demo fabric into an empty inventory and write the first admin
# token, then serve. `exec` makes the server PID 1 so that it receives SIGTERM.
CMD ["sh", "-c", "waterline migrate && waterline bootstrap && exec waterline serve --host 0.0.0.0"]
