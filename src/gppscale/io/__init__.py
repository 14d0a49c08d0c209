"""io — see ARCHITECTURE.md."""
