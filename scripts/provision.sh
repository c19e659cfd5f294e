#!/usr/bin/env bash
# Installs the system packages Pocket needs, from Debian, when they are missing:
# nats-server always, and the Debian packages named as arguments (e.g. redis-server
# for the benchmark). Safe to run again: it does nothing when everything is there.
set -euo pipefail

need=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || need+=(nats-server)
for extra in "$@"; do
  dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra")
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi

echo "provision: installing ${need[*]} from Debian's packages" >&2
if [ "$(id -u)" -eq 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo -n"
else
  echo "provision: cannot install ${need[*]}: not root and no password-less sudo." >&2
  echo "provision: run as root:  apt-get update && apt-get install -y ${need[*]}" >&2
  echo "provision: or set POCKET_NATS_SERVER to a nats-server binary you have." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "provision: no apt-get here; install ${need[*]} with this system's package manager" >&2
  echo "provision: (nats-server: any 2.9+ release), or set POCKET_NATS_SERVER to its path." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
echo "provision: done" >&2
