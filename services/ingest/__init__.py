"""Ingest service: the HTTP API platforms post feedback to."""
