#!/usr/bin/env bash
# Sets up .venv (Python 3.10) with textops installed in editable mode, every dependency pinned
# by constraints.txt. Idempotent: a second call with unchanged pyproject.toml/constraints.txt
# and extras returns at once.
#
#   scripts/setup.sh            runtime only (enough for `textops demo`)
#   scripts/setup.sh --dev      + test tools
#   scripts/setup.sh --bench    + benchmark peers (fastText)
set -euo pipefail
cd "$(dirname "$0")/.."

extras=()
system_tools=0
for arg in "$@"; do
  case "$arg" in
    --dev) extras+=(dev); system_tools=1 ;;
    --bench) extras+=(dev bench); system_tools=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (use --dev or --bench)" >&2; exit 2 ;;
  esac
done

find_python() {
  for candidate in "${PYTHON:-}" python3.10 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ]; then
  if ! py=$(find_python); then
    echo "setup.sh: Python 3.10 is required (TFX 1.16 supports 3.9-3.10) and was not found." >&2
    echo "          Install it (e.g. pyenv install 3.10) or set PYTHON=/path/to/python3.10." >&2
    exit 1
  fi
  echo "setup.sh: creating .venv with $($py --version 2>&1)"
  "$py" -m venv .venv
fi
if ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)'; then
  echo "setup.sh: .venv is not Python 3.10; remove it (rm -rf .venv) and run again." >&2
  exit 1
fi

# Test tools from the system's packages: headless Chromium (screenshots of the HTML reports),
# promtool (checks the Prometheus alert rules), wrk (serving benchmark). Optional: tests that
# need them skip with the reason when they are missing.
if [ "$system_tools" = 1 ]; then
  need=()
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "setup.sh: installing ${need[*]} (Debian packages) for the browser, alert-rule and load tests"
      if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
        echo "setup.sh: could not install ${need[*]}; the tests that need them will be skipped" >&2
      fi
    else
      echo "setup.sh: ${need[*]} not installed (needs root and apt-get); the tests that need them will be skipped"
    fi
  fi
fi

spec="."
if [ ${#extras[@]} -gt 0 ]; then
  spec=".[$(IFS=,; echo "${extras[*]}")]"
fi
stamp_file=.venv/.textops-installed
stamp="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $spec"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  echo "setup.sh: .venv is up to date ($spec)"
  exit 0
fi
echo "setup.sh: installing textops $spec with pinned dependencies (first time: several minutes)"
.venv/bin/python -m pip install --quiet --upgrade "pip>=23" wheel
.venv/bin/python -m pip install --quiet -c constraints.txt -e "$spec"
echo "$stamp" > "$stamp_file"
echo "setup.sh: done; the CLI is .venv/bin/textops"
