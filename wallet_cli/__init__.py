"""The `wallet` command: a thin shell over the flows, the importers and the API."""
