"""Adapters to the outside world: PostgreSQL, SQS, the Telegram Bot API, AWS secrets."""
