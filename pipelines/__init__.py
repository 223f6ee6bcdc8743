"""Batch jobs: importing exports, generating demo data, the VIP migration and its flows."""
