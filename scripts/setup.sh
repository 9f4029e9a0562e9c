#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian machine (or an operator's box):
#   - system packages the harness and its tests drive (Debian's Nix 2.8, git, openssh,
#     iproute2, debootstrap, systemd-container), installed only when missing, only as root;
#   - a venv in .venv with choirci and its test extras (re-installed when pyproject changes).
# Nix is NOT reconfigured system-wide: scripts/env.sh scopes the offline settings to our
# runs through NIX_CONFIG, so an existing user or system nix.conf is left alone.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf 'setup: %s\n' "$*" >&2; }

# command -> Debian package providing it
declare -A NEED=(
  [nix]=nix-bin [git]=git [sshd:/usr/sbin/sshd]=openssh-server [ssh]=openssh-client
  [ip]=iproute2 [debootstrap]=debootstrap [systemd-nspawn]=systemd-container
  [ssh-keygen]=openssh-client [mkfs.ext4]=e2fsprogs [curl]=curl
  # a real crate with a dependency for tests/test_rust_real_crate.py (sources, built offline)
  [aho-corasick:/usr/share/doc/librust-aho-corasick-dev]=librust-aho-corasick-dev
)

missing=()
for key in "${!NEED[@]}"; do
  cmd="${key%%:*}"; path="${key#*:}"
  if [[ "$path" == "$key" ]]; then command -v "$cmd" >/dev/null 2>&1 && continue
  else [[ -x "$path" ]] && continue; fi
  missing+=("${NEED[$key]}")
done
if ! command -v cargo >/dev/null 2>&1 && [[ ! -x "$HOME/.cargo/bin/cargo" ]]; then
  missing+=(cargo rustc rustfmt)
fi

if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [[ $(id -u) -ne 0 ]]; then
    say "missing system packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}"
    exit 1
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  say "choirci needs Python >= 3.11; set PYTHON=/path/to/python3.11"
  exit 1
fi
if ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then say "run: sudo apt-get install -y python3-venv"; exit 1; fi
  say "installing python3-venv"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
fi
stamp=".venv/.choirci-setup"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  say "creating .venv and installing choirci[test]"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! .venv/bin/pip install -q -e '.[test]' >.venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    say "pip install failed (log above, also in .venv/pip-install.log)"
    exit 1
  fi
  echo "$want" > "$stamp"
fi
say "ready: $(nix --version 2>/dev/null || echo 'nix missing'), $(. scripts/env.sh; cargo --version 2>/dev/null || echo 'cargo missing')"
