#!/bin/sh
# Starts the search API under gunicorn: two workers unless WORKERS says otherwise.
set -e
WORKERS=${WORKERS:-2}
PORT=${PORT:-8000}
exec gunicorn -w "$WORKERS" -b "0.0.0.0:$PORT" --timeout 120 search.service:app
