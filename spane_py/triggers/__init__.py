"""Workflow triggers: cron schedules and webhooks."""
