"""The wallet domain: statuses, settings, tables and database sessions.

Both the API (`wallet_api`) and the flows (`pipelines`) build on this package; it imports
neither of them.
"""
