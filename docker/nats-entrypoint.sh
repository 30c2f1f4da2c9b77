#!/bin/sh
# Entrypoint of the compose `nats` service: export each NATS user's password from its Docker
# secret file, then exec the server. docker/nats-server.conf refers to them as $WORKER_PASSWORD,
# $OPERATOR_PASSWORD and $CLIENT_PASSWORD, so no secret is written in the configuration, in
# compose.yaml or in the container's environment as seen by `docker inspect`.
#
# For every NAME in the list, NAME_FILE must name a readable, non-empty file; otherwise the
# container stops with a message naming the variable (never the value). The value is exported
# in double quotes: nats-server parses a `$NAME` reference as a configuration value, so an
# unquoted 12345 would become a number and `a b` a syntax error. Inside the quotes the
# configuration lexer would interpret `"` and `\`, so a password holding either (or a line
# break) is refused, as is the example files' CHANGE-ME placeholder; the trailing line break of
# the file is dropped.
set -eu

for name in WORKER_PASSWORD OPERATOR_PASSWORD CLIENT_PASSWORD; do
  eval "file=\${${name}_FILE:-}"
  if [ -z "$file" ]; then
    echo "nats-entrypoint: ${name}_FILE is not set" >&2
    exit 64
  fi
  if [ ! -r "$file" ]; then
    echo "nats-entrypoint: ${name}_FILE: cannot read $file" >&2
    exit 66
  fi
  value=$(cat "$file")
  if [ -z "$value" ]; then
    echo "nats-entrypoint: ${name}_FILE: $file is empty" >&2
    exit 65
  fi
  case "$value" in
    CHANGE-ME*)
      echo "nats-entrypoint: ${name}_FILE: $file still holds the example placeholder" >&2
      exit 65
      ;;
    *'"'* | *'\'* | *"
"*)
      echo "nats-entrypoint: ${name}_FILE: $file holds a double quote, a backslash or a line break" >&2
      exit 65
      ;;
  esac
  export "$name=\"$value\""
done
unset file value

exec "$@"
