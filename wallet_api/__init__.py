"""The wallet's HTTP API: a signed-in user's plan records and orders, read from the views."""
