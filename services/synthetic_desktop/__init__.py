"""synthetic-desktop: replays the desktop app's REST choreography against the backend."""
