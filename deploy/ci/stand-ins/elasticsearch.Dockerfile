# CI stand-in for docker.elastic.co/elasticsearch/elasticsearch:9.5.4 (no registry reachable): the Maven Central
# distribution of scripts/elasticsearch_local.py (copied in as elasticsearch/) on the host's JDK >= 21 (jdk/), with the
# hunspell dictionary that distribution needs for English stemming. Single node, security off (the compose
# backend network is internal), uid 1000 as in the official image, curl for the compose healthcheck.
FROM docker.io/library/python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends hunspell-en-us curl && rm -rf /var/lib/apt/lists/*
COPY jdk/ /opt/jdk/
COPY elasticsearch/ /usr/share/elasticsearch/
RUN useradd --uid 1000 --gid 0 --no-create-home --home-dir /usr/share/elasticsearch elasticsearch \
    && mkdir -p /usr/share/elasticsearch/config/hunspell/en_US /usr/share/elasticsearch/data \
       /usr/share/elasticsearch/logs /usr/share/elasticsearch/tmp \
    && cp /usr/share/hunspell/en_US.aff /usr/share/hunspell/en_US.dic /usr/share/elasticsearch/config/hunspell/en_US/ \
    && printf '%s\n' 'discovery.type: single-node' 'network.host: 0.0.0.0' 'xpack.security.enabled: false' \
       'xpack.ml.enabled: false' 'node.store.allow_mmap: false' \
       'cluster.routing.allocation.disk.threshold_enabled: false' 'action.destructive_requires_name: false' \
       > /usr/share/elasticsearch/config/elasticsearch.yml \
    && chown -R 1000:0 /usr/share/elasticsearch
ENV ES_JAVA_HOME=/opt/jdk ES_TMPDIR=/usr/share/elasticsearch/tmp ES_JAVA_OPTS="-Xms512m -Xmx512m"
USER 1000
WORKDIR /usr/share/elasticsearch
EXPOSE 9200
CMD ["bin/elasticsearch"]
