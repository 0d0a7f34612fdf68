#!/usr/bin/env bash
# The two commands of the README:
#   ./run.sh app    set up .venv if needed, then start the web app (http://127.0.0.1:7860)
#   ./run.sh test   set up .venv with the test tools (and Debian's chromium), then run the tests
# Set-up is skipped when the requirements have not changed since the last run.
set -euo pipefail
cd "$(dirname "$0")"
venv=.venv
python=${PYTHON:-python3}

setup() {  # $1: the requirements file to install
  local stamp="$venv/.installed-$(basename "$1" .txt)"
  local want
  want=$(cat requirements*.txt | sha256sum | cut -c1-16)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return; fi
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$1"
  echo "$want" >"$stamp"
}

browser() {  # the browser tests drive Debian's chromium (Playwright cannot download its own here)
  command -v chromium >/dev/null && return
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium is not installed; the browser tests will be skipped" >&2
  fi
}

case "${1:-}" in
  app)
    setup requirements.txt
    shift; exec "$venv/bin/python" app.py "$@" ;;
  test)
    setup requirements-dev.txt
    browser
    shift; exec "$venv/bin/python" -m pytest "$@" ;;
  *)
    echo "usage: ./run.sh app | ./run.sh test [pytest args]" >&2; exit 2 ;;
esac
