"""Online serving: recall over Feast vectors (and, with the CTR issue, the scorer), no LLM on the request path
except to embed a free-text recall query."""
