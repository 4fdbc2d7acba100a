#!/usr/bin/env bash
# Builds the container image `jobrunner:VERSION` from scratch with buildah,
# pulling nothing: the release `runner` binary, the shared libraries it
# links (read off it with ldd: the C library, libgcc_s and the dynamic
# loader; the binary is not static), a config, and a health check that
# runs `runner health` (a scratch image has no curl).
#
#   deploy/container/build-image.sh VERSION      (cargo xtask image)
#
# Then, for example:
#   podman run -e REDIS_URL=redis://redis:6379/0 -e RUNNER_TOKEN=... \
#     -v ./plugins:/etc/jobrunner/plugins:ro -p 8080:8080 jobrunner:VERSION
#
# The image has no redis-server: it needs an external Redis (REDIS_URL).
# Not run by CI (see deploy/README.md for what was built here and how).
set -euo pipefail
version=${1:?usage: build-image.sh VERSION}
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/deploy/container"
command -v buildah >/dev/null || { echo "build-image.sh: needs buildah (apt-get install buildah)" >&2; exit 1; }
# The Docker format throughout: OCI images have no place for a health check.
export BUILDAH_FORMAT=docker

cargo build --release -p runner --bin runner --manifest-path "$root/Cargo.toml"
binary="$root/target/release/runner"

stage=$(mktemp -d)
# The image's root takes this folder's mode (mktemp makes it 0700).
chmod 755 "$stage"
trap 'rm -rf "$stage"' EXIT
install -Dm755 "$binary" "$stage/usr/bin/runner"
strip --strip-debug "$stage/usr/bin/runner"
# Every library the binary links, at the path the loader looks for it.
for lib in $(ldd "$binary" | awk '/=>/ {print $3} !/=>/ && /^\s*\// {print $1}'); do
    install -Dm755 "$lib" "$stage$lib"
done
install -Dm644 "$here/runner.toml" "$stage/etc/jobrunner/runner.toml"
install -d -m755 "$stage/etc/jobrunner/plugins"
install -d -m750 "$stage/var/lib/jobrunner"
# A user with no name: the runner needs none, only the uid.
chown 65532:65532 "$stage/var/lib/jobrunner"

ctr=$(buildah from scratch)
trap 'rm -rf "$stage"; buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah copy --quiet "$ctr" "$stage" / >/dev/null
buildah config \
    --user 65532:65532 \
    --workingdir /var/lib/jobrunner \
    --env RUNNER_HTTP_BIND=0.0.0.0:8080 \
    --env RUNNER_LOG=info \
    --port 8080 \
    --entrypoint '["/usr/bin/runner"]' \
    --cmd '["serve", "--config", "/etc/jobrunner/runner.toml"]' \
    --stop-signal SIGTERM \
    --healthcheck 'CMD /usr/bin/runner health --url http://127.0.0.1:8080/health' \
    --healthcheck-interval 10s --healthcheck-timeout 6s --healthcheck-retries 3 \
    --label org.opencontainers.image.title=jobrunner \
    --label "org.opencontainers.image.version=$version" \
    "$ctr"
# The Docker format: OCI images have no place for a health check.
buildah commit --quiet --format docker "$ctr" "jobrunner:$version"
echo "jobrunner:$version"
