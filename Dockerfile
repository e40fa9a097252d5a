# syntax=docker/dockerfile:1.7
#
# rwsgi + the Flask example in a FROM scratch image: the rwsgi binary and
# the Python host it loads beside it (librwsgi.so), the dynamic loader and exactly the shared objects and Python modules the app
# loads, the app, /etc/passwd with nobody, and /tmp. No shell, no package
# manager, no other executable. Runs as 65534:65534.
#
#   docker build -t rwsgi-flask .
#   docker run --rm -p 9090:9090 --read-only --cap-drop=ALL rwsgi-flask
#
# The builder does exactly what tests/bundle.rs does on a machine without a
# Docker engine: build rwsgi against Debian's python3.11, install the app's
# requirements into a virtualenv made from that python, run `rwsgi bundle`.

FROM rust:1-bookworm AS builder
RUN rm -f /etc/apt/apt.conf.d/docker-clean \
 && echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/keep-cache
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-dev python3.11-venv binutils

WORKDIR /src
# The app's packages first: they change less often than the code.
COPY examples/flask_hello/requirements.txt /src/examples/flask_hello/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    /usr/bin/python3.11 -m venv /venv \
 && /venv/bin/pip install -r /src/examples/flask_hello/requirements.txt

COPY . /src
ENV PYO3_PYTHON=/usr/bin/python3.11
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && cp target/release/rwsgi target/release/librwsgi.so /usr/local/bin/
# The example needs neither OpenSSL (5.5 MiB: _ssl, _hashlib, libssl and
# libcrypto; http.client imports ssl only if it can) nor a loose standard
# library: 19.1 MiB instead of 26.7. An app that hashes passwords with
# Werkzeug (hashlib.scrypt) or calls HTTPS services must drop the two
# --exclude-module flags.
RUN rwsgi bundle --module app:app --chdir /src/examples/flask_hello --virtualenv /venv \
      --exclude-module _ssl --exclude-module _hashlib --zip --out /bundle

FROM scratch
COPY --from=builder /bundle /
USER 65534:65534
EXPOSE 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/rwsgi", "/app/rwsgi.ini", "--http-socket", ":9090", "--master", \
            "--processes", "8", "--cheaper", "1", "--cheaper-algo", "busyness", \
            "--reload-mercy", "25", "--warmup-url", "/"]
