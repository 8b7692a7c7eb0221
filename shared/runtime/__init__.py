"""Long-lived connections per event loop, and work done after a response."""
