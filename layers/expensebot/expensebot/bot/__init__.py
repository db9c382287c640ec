"""The Telegram bot (aiogram 3). Only the webhook function imports this package: aiogram's import alone
costs seconds of cold start that the job and worker functions must not pay."""
