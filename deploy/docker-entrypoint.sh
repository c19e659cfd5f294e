#!/bin/sh
# The image's entrypoint: runs one actor,
#   docker-entrypoint.sh controller|shard|node
# with its JSON configuration in POCKET_ACTOR_CONFIG (actors/main.ts).
#
# Kubernetes mounts Secrets readable by the pod's group (fsGroup), and the
# actors refuse a secret file that others can read. So every file in
# POCKET_SECRETS_DIR, when it exists, is first copied 0600 into
# POCKET_PRIVATE_DIR (an in-memory emptyDir in the manifests), where the
# actor's configuration names it.
set -eu
app="$(cd "$(dirname "$0")/.." && pwd)"
secrets="${POCKET_SECRETS_DIR:-}"
private="${POCKET_PRIVATE_DIR:-}"
if [ -n "$secrets" ] && [ -d "$secrets" ]; then
  if [ -z "$private" ]; then
    echo "docker-entrypoint: POCKET_SECRETS_DIR is set but POCKET_PRIVATE_DIR is not" >&2
    exit 2
  fi
  umask 077
  mkdir -p "$private"
  for f in "$secrets"/*; do
    # Kubernetes' own entries (..data, ..<timestamp>) start with a dot and are skipped by the glob.
    [ -f "$f" ] || continue
    to="$private/$(basename "$f")"
    cp "$f" "$to"
    chmod 600 "$to"
  done
fi
exec node "$app/dist/actors/main.js" "$@"
