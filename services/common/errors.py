"""The root of the project's exceptions."""


class TriageError(Exception):
    """Base class of every error the services raise on purpose."""


class ConfigurationError(TriageError):
    """Settings or a configuration file are invalid; the message says which and why."""


class BrokerUnavailable(TriageError):
    """The Kafka broker could not durably accept a record in time."""
