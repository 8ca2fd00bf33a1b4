#!/usr/bin/env bash
# Creates the topics with their partitions and retention (see the topic table in docs/architecture.md).
# Run by the kafka-init service of docker-compose.yml against $BOOTSTRAP; ROUTER_FLOORS: the
# number of floors of the router's roster (docs/routing.md#floors), 1 by default.
set -euo pipefail
: "${BOOTSTRAP:?}"
PREFIX="${TRIAGE_KAFKA_TOPIC_PREFIX:-}"
create() {  # name partitions retention_ms
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "${PREFIX}$1" --partitions "$2" --replication-factor "${REPLICATION_FACTOR:-1}" \
    --config "retention.ms=$3"
}
create feedback.received 6 604800000
create feedback.received.dlq 1 2592000000
create feedback.classified 6 604800000
create feedback.classified.dlq 1 2592000000
create router.inbox "${ROUTER_FLOORS:-1}" 2592000000  # one partition per floor of the roster
create router.inbox.dlq 1 2592000000
create cases.events 6 2592000000
create agents.events 1 2592000000
create feedback.corrections 1 315360000000
create webhooks.dlq 1 2592000000
create trends.surges 1 2592000000
create trends.emerging 1 2592000000
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$BOOTSTRAP" --list
