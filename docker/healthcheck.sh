#!/bin/bash
# Container health check for the revspend `serve` image: GET /health/ready on
# the port the server binds, succeed only on an HTTP 200 status line (ready:
# a model and the online snapshot are loaded and the model passed its smoke
# prediction).
#
# Uses bash's /dev/tcp so the runtime image needs neither curl nor wget
# (debian:*-slim has neither; bash is Essential and always present).
# Exit status: 0 healthy, 1 unhealthy (the only codes Docker defines).
set -u

bind="${REVSPEND_BIND:-0.0.0.0:8000}"
port="${bind##*:}"
case "$port" in
    '' | *[!0-9]*) echo "healthcheck: cannot parse port from REVSPEND_BIND=$bind" >&2; exit 1 ;;
esac

# The server listens on 0.0.0.0 (or a specific address) inside the container;
# loopback reaches it in the former case, which is the image's default.
host=127.0.0.1
case "$bind" in
    0.0.0.0:* | '[::]:'* | 127.0.0.1:* | localhost:*) ;;
    *) host="${bind%:*}"; host="${host#[}"; host="${host%]}" ;;
esac

if ! exec 3<>"/dev/tcp/${host}/${port}"; then
    echo "healthcheck: cannot connect to ${host}:${port}" >&2
    exit 1
fi
printf 'GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3

status_line=''
if ! IFS= read -r -t 4 status_line <&3; then
    echo "healthcheck: no response from ${host}:${port}" >&2
    exit 1
fi
exec 3<&-

case "$status_line" in
    'HTTP/1.'[01]' 200'*) exit 0 ;;
    *) echo "healthcheck: unexpected status: ${status_line%$'\r'}" >&2; exit 1 ;;
esac
