"""The Telegram bot (aiogram 3). Only the webhook function imports the routers and the webhook module:
aiogram's import alone costs seconds of cold start that the job and worker functions must not pay. This
package's own module imports nothing heavy, so the CLI can read what the bot handles."""

# The update types the routers handle, which `expensebot webhook set` asks Telegram to send (a test keeps
# it equal to what aiogram's dispatcher resolves from the routers). Telegram sends nothing else, and
# whatever still comes is acknowledged and ignored.
HANDLED_UPDATE_TYPES: tuple[str, ...] = ("message",)
