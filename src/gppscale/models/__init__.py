"""models — see ARCHITECTURE.md."""
