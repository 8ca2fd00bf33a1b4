"""What the services share: message models, topic names, Kafka and broker plumbing."""
