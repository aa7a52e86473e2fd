# Salt 3008.4 from PyPI on Debian bookworm, with the scripts the containers run
# (scripts/container/: salt-master, salt-minion, webhook-receiver; the tests run them too).
# One image for the master, the minion and the receiver of docker-compose.yml.
FROM debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# timelib, which Salt requires, has no wheel: it is compiled here, and the compiler removed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev python3-dev \
    && python3 -m venv /opt/salt \
    && /opt/salt/bin/pip install --no-cache-dir --disable-pip-version-check salt==3008.4 \
    && apt-get purge -y --auto-remove gcc libc6-dev python3-dev \
    && rm -rf /var/lib/apt/lists/*
# The scripts in /usr/local/bin come first on PATH (salt-master is the script, which runs
# $SALT_BIN/salt-master); salt, salt-key and salt-call are Salt's own.
ENV SALT_BIN=/opt/salt/bin PATH=$PATH:/opt/salt/bin
COPY scripts/container/ /usr/local/bin/
