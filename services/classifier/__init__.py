"""Classifier service: tags each message with sentiment, category and difficult-customer type."""
