"""The ImmyBot web pages the app links technicians to (the tab), built in one place.

A computer's page is `<base>/computers/<id>`; a ticket's Technician Tools page is
`<base>/technician-pod/psa/<HaloPSA provider link id>/ticket/<ticket id>` (DESIGN.md section 9).
"""

from __future__ import annotations


def computer_page(base_url: str, computer_id: int) -> str:
    """The ImmyBot page of one computer, where a technician installs software on it."""
    return f"{base_url.rstrip('/')}/computers/{computer_id}"


def technician_tools(base_url: str, link_id: int, ticket_id: int) -> str:
    """ImmyBot's Technician Tools for a HaloPSA ticket, through the HaloPSA provider link."""
    return f"{base_url.rstrip('/')}/technician-pod/psa/{link_id}/ticket/{ticket_id}"
