"""Prefect flows: the one-off VIP migration and (later) the scheduled status transitions."""
