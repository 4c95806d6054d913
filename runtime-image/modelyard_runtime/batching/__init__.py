"""Dynamic batching: a pure merge/split core (``merge``) and an asyncio queue around it."""
