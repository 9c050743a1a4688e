# syntax=docker/dockerfile:1
#
# One image for every role of the distributed brain: a brain node (the default command,
# examples/secure_distributed_brain_demo.py) or the Zenoh router (`evospikenet-router`).
#
#   docker build -t evospikenet .
#   docker compose up --build          # see docker-compose.yml
#
# Two stages: the build stage compiles the Rust extension into a wheel (Rust, a C compiler
# for ring's assembly, maturin); the runtime stage installs only that wheel, so neither the
# toolchain nor the sources end up in the image that runs.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

# Cargo.toml sets rust-version = "1.85"; any stable toolchain at least that new builds it.
ARG RUST_TOOLCHAIN=stable
ENV RUSTUP_HOME=/opt/rustup \
    CARGO_HOME=/opt/cargo \
    PATH=/opt/cargo/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain "${RUST_TOOLCHAIN}" --no-modify-path

WORKDIR /src
# Only what the build needs: the build context may hold a .env with the PSK and a large
# local target/ directory, and neither belongs in an image.
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY src ./src
COPY python ./python
# The cache mounts keep downloaded crates and compiled dependencies between builds
# (BuildKit, the default builder of current Docker releases).
RUN --mount=type=cache,target=/opt/cargo/registry \
    --mount=type=cache,target=/src/target \
    pip wheel --no-deps --wheel-dir /wheels .


FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Optional extras of the package: "plot" (matplotlib) lets the nodes save raster plots next
# to their results; build with --build-arg EXTRAS= for a smaller image without them.
ARG EXTRAS=plot
COPY --from=build /wheels /wheels
RUN wheel="$(echo /wheels/evospikenet-*.whl)" \
    && pip install --no-cache-dir "${wheel}${EXTRAS:+[${EXTRAS}]}" \
    && rm -rf /wheels

WORKDIR /app
COPY examples ./examples

# Nodes write their results (<node-id>.json) to /app/results; a named volume mounted there
# starts out owned by this unprivileged user.
RUN useradd --create-home --uid 10001 evospikenet \
    && mkdir -p /app/results \
    && chown evospikenet:evospikenet /app/results
USER evospikenet

# The router's port (docker-compose.yml runs `evospikenet-router --listen tcp/0.0.0.0:7447`).
EXPOSE 7447

# A brain node: NODE_ID and EVOSPIKENET_PSK come from the environment, the peers and the
# router from the command line, e.g.
#   docker run --rm -e NODE_ID=pfc-0 -e EVOSPIKENET_PSK evospikenet \
#       python examples/secure_distributed_brain_demo.py --peer-id motor-0 --connect tcp/router:7447
CMD ["python", "examples/secure_distributed_brain_demo.py"]
