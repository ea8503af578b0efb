#!/usr/bin/env bash
# ./run.sh            set up .venv if needed, then start the app (web app: see README)
# ./run.sh test       set up .venv with the test requirements, then ruff + pytest
# ./run.sh predict F  the command-line tool (python -m emotion_app predict F ...)
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv

setup() {  # $1: requirements file
  local req=$1
  if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating virtual environment in $VENV" >&2
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(cat requirements*.txt "$req" | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "Installing $req (first run only)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$req"
    touch "$stamp"
  fi
}

case "${1:-}" in
  test)
    shift
    setup requirements-dev.txt
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  predict|make-checkpoint)
    setup requirements.txt
    exec "$VENV/bin/python" -m emotion_app "$@"
    ;;
  *)
    setup requirements.txt
    if [ -f app.py ]; then
      exec "$VENV/bin/python" app.py "$@"
    fi
    echo "The web app is not built yet; use: ./run.sh predict FILE... (see README)" >&2
    exec "$VENV/bin/python" -m emotion_app --help
    ;;
esac
