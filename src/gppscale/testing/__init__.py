"""testing — see ARCHITECTURE.md."""
