# Salt from PyPI, with the scripts the tests also run (scripts/container/).
FROM python:3.11-slim
RUN pip install --no-cache-dir salt==3008.4
COPY scripts/container/ /usr/local/bin/
