"""stages — see ARCHITECTURE.md."""
