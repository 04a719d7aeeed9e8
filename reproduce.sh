#!/usr/bin/env bash
# One entry point for the whole study.
#   bash reproduce.sh          install into .venv, then run the main job: execute every chapter
#                              (quick profile), regenerate the claims pages, build the book
#   bash reproduce.sh test     install into .venv, then run the test suite
# VENV=path chooses another virtual environment (CI uses a fresh one).
set -euo pipefail
cd "$(dirname "$0")"
VENV="${VENV:-.venv}"
task="${1:-main}"
case "$task" in
  main|test) ;;
  *) echo "reproduce.sh: unknown task '$task' (allowed: main, test)" >&2; exit 2 ;;
esac

if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment $VENV"
  python3 -m venv "$VENV"
fi
echo "installing requirements into $VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .

if [ "$task" = main ]; then
  exec "$VENV/bin/vqstudy" reproduce --profile "${PROFILE:-quick}"
fi

set +e
# One worker per core (each computes on one thread under the pinned numerics); loadscope keeps every test
# module, and every notebook's cells, on one worker, in order. TEST_WORKERS=0 runs everything in this process.
"$VENV/bin/python" -m pytest -n "${TEST_WORKERS:-auto}" --dist loadscope
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "reproduce.sh: pytest collected no tests - treating as a failure" >&2
  exit 1
fi
exit "$code"
