"""Signed webhooks of the case lifecycle: a worker reads ``cases.events`` and posts each event to
the subscribers who asked for it, following the Standard Webhooks convention."""
