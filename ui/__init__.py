"""Business Services web UI (server-rendered pages)."""
