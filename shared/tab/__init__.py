"""The technician tab: view model, computers, snapshot reads, rendering (jinja2 templates)."""
