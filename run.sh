#!/usr/bin/env bash
# ./run.sh            set up .venv if needed, then start the web app on http://127.0.0.1:7860 (flags: serve's)
# ./run.sh test       set up .venv with the test requirements (Debian's chromium, npm's Gradio client), then ruff, the layers, pytest
# ./run.sh predict F  any command of the command line (emotion-app serve|predict|batch|evaluate|train-head|...)
set -euo pipefail
CALLER=$PWD  # the command line's file arguments are the caller's paths
cd "$(dirname "$0")"
VENV=.venv

setup() {  # $1: requirements file
  local req=$1
  if [ ! -x "$VENV/bin/python" ]; then
    echo "Creating virtual environment in $VENV" >&2
    python3 -m venv "$VENV"
  fi
  local stamp="$VENV/.installed-$(cat requirements*.txt pyproject.toml "$req" | sha1sum | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "Installing $req (first run only)" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -r "$req"
    "$VENV/bin/python" -m pip install -q --no-deps -e .  # the `emotion-app` command, on this checkout
    touch "$stamp"
  fi
}

system_packages() {  # $1: "test" adds Debian's chromium, espeak-ng and Node.js for the tests
  # The fonts render Chinese and emoji in the PNG charts (Symbola: emoji outlines) and in the
  # screenshots; without them the charts fall back to English labels.
  local missing=()
  if [ "${1:-}" = test ]; then  # the browser tests; spoken test audio for the VAD tests
    command -v chromium >/dev/null || missing+=(chromium)
    command -v espeak-ng >/dev/null || missing+=(espeak-ng)
    command -v npm >/dev/null || missing+=(nodejs npm)  # the npm Gradio client's test (tests/js)
  fi
  # the list read once: `fc-list | grep -q` under pipefail fails at random (grep -q stops reading early)
  local fonts
  fonts=$(fc-list 2>/dev/null || true)
  grep -qi "Noto Sans CJK" <<<"$fonts" || missing+=(fonts-noto-cjk)
  grep -qi "Noto Color Emoji" <<<"$fonts" || missing+=(fonts-noto-color-emoji)
  grep -qi "Symbola" <<<"$fonts" || missing+=(fonts-symbola)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if ! sudo -n true 2>/dev/null; then
      echo "Missing Debian packages: ${missing[*]} (install them with apt; continuing without)" >&2
      [ "${1:-}" = test ] && return 1
      return 0
    fi
    sudo="sudo"
  fi
  if ! command -v apt-get >/dev/null; then
    echo "Missing system packages: ${missing[*]} (no apt-get here; install them by hand)" >&2
    [ "${1:-}" = test ] && return 1
    return 0
  fi
  echo "Installing ${missing[*]} (apt)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

npm_client() {  # the npm Gradio client that tests/test_npm_client.py runs, as tests/js/package-lock.json pins it
  if ! command -v npm >/dev/null; then
    echo "npm is missing: tests/test_npm_client.py needs Node.js 18+ and npm (apt-get install nodejs npm)" >&2
    return 0  # that test then fails, saying the same
  fi
  local stamp="tests/js/node_modules/.installed-$(sha1sum <tests/js/package-lock.json | cut -c1-12)"
  if [ ! -f "$stamp" ]; then  # npm ci empties node_modules first: the stamp goes with an old install
    echo "Installing the npm Gradio client in tests/js (first run only)" >&2
    npm ci --prefix tests/js --no-audit --no-fund --loglevel=error >/dev/null
    touch "$stamp"
  fi
}

case "${1:-}" in
  test)
    shift
    system_packages test
    setup requirements-dev.txt
    npm_client
    "$VENV/bin/ruff" check .
    "$VENV/bin/ruff" format --check .
    "$VENV/bin/lint-imports"  # the layers of the package (pyproject.toml, docs/layout.md)
    workers=$(nproc)  # one pytest-xdist worker per core, at most 4 (each builds the session's fixtures)
    [ "$workers" -gt 4 ] && workers=4
    # a module's tests in one worker (tests/workers.py); the slowest ten at the end
    exec "$VENV/bin/python" -m pytest -n "$workers" --dist loadgroup --no-loadscope-reorder --durations=10 "$@"
    ;;
  serve|predict|batch|evaluate|train-head|embed-speaker|make-checkpoint|export-onnx)
    setup requirements.txt
    python="$PWD/$VENV/bin/python"
    cd "$CALLER"
    exec "$python" -m emotion_app "$@"
    ;;
  *)
    system_packages || true
    setup requirements.txt
    exec "$VENV/bin/python" app.py "$@"
    ;;
esac
