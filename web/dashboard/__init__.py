"""The dashboard at ``/``: a static page (HTML, CSS, JS modules, a vendored chart library) that
reads the JSON API, and the one read-only endpoint it needs that the API lacked."""

from web.dashboard.controller import DASHBOARD_HANDLERS

__all__ = ["DASHBOARD_HANDLERS"]
