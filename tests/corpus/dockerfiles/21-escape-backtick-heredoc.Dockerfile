# escape=`
# Pattern: backtick escape directive, a heredoc RUN (BuildKit dockerfile:1.4+)
# that installs with pip in the script, and a heredoc COPY writing a config.
# How common: heredocs are uncommon but growing since BuildKit 1.4; the escape
# directive is mostly seen in Windows-origin repos.
FROM python:3.11-slim@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
WORKDIR /app
RUN <<EOF
set -eu
pip install torch==2.6.0 --index-url https://download.pytorch.org/whl/cpu
pip install --no-cache-dir fastapi==0.115.0
EOF
COPY <<-"CONF" /app/settings.toml
	workers = 1
	threads = "$THREADS"
	CONF
COPY --chown=0:0 `
     server.py /app/
USER 1000:1000
HEALTHCHECK CMD ["python", "-c", "import server"]
CMD ["python", "server.py"]
