#!/usr/bin/env bash
# ./run.sh            set up .venv if needed, then start the web app on http://127.0.0.1:7860
# ./run.sh test       set up .venv with the test requirements (and Debian's chromium), then ruff + pytest
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

system_packages() {  # the browser tests drive Debian's chromium; the fonts render Chinese and emoji
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing+=(fonts-noto-cjk)
  fc-list 2>/dev/null | grep -qi "Noto Color Emoji" || missing+=(fonts-noto-color-emoji)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "Installing ${missing[*]} (apt)" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

case "${1:-}" in
  test)
    shift
    system_packages
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
    exec "$VENV/bin/python" app.py "$@"
    ;;
esac
