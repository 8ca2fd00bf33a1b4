"""Streaming complaint triage: ingest, classifier and router services."""
