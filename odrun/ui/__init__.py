"""The terminal: progress bars and quieting of library logs."""
