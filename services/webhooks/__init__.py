"""Webhook delivery to subscribers (CONTRACT.md §5)."""
