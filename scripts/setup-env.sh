# Shared set-up for scripts/demo and scripts/test: system packages, virtualenv, pip install.
# Idempotent: a second run installs nothing and takes a few seconds.
# Usage: source scripts/setup-env.sh APT_LIST EXTRAS
set -euo pipefail
_apt_list=$1
_extras=$2
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

_sudo=""
if [ "$(id -u)" != 0 ]; then _sudo="sudo"; fi

_missing=()
while read -r pkg; do
  pkg=${pkg%%#*}; pkg=$(echo "$pkg" | xargs)
  [ -z "$pkg" ] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || _missing+=("$pkg")
done < "$_root/$_apt_list"
if [ ${#_missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${_missing[*]}"
  $_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_sudo apt-get install -y -qq --no-install-recommends "${_missing[@]}" >/dev/null
fi

_py=${PYTHON:-python3}
# A .venv left by a failed earlier run (python3-venv missing: Debian creates bin/python, then
# ensurepip fails; or interrupted) has no working pip. Recreate it instead of skipping it.
if [ ! -x "$_root/.venv/bin/python" ] || ! "$_root/.venv/bin/python" -m pip --version >/dev/null 2>&1; then
  if [ -e "$_root/.venv" ]; then
    echo "==> .venv is incomplete (an earlier set-up stopped half-way): recreating it"
  else
    echo "==> creating virtualenv .venv"
  fi
  "$_py" -m venv --clear "$_root/.venv"
  rm -f "$_root"/.venv/.installed-*
  "$_root/.venv/bin/python" -m pip install -q --upgrade pip
fi
# Re-install only when the dependency list or the extras changed.
_stamp="$_root/.venv/.installed-$(echo "$_extras" | tr ',' '-')"
_hash=$(cat "$_root/pyproject.toml" | sha256sum | cut -c1-16)
if [ ! -f "$_stamp" ] || [ "$(cat "$_stamp")" != "$_hash" ]; then
  echo "==> pip install -e .[$_extras]"
  "$_root/.venv/bin/pip" install -q -e "$_root[$_extras]"
  echo "$_hash" > "$_stamp"
fi
export PATH="$_root/.venv/bin:$PATH"
