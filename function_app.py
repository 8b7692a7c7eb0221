"""The Functions app: registers the three blueprints (and turns telemetry on if configured)."""

import azure.functions as func

from shared.telemetry import configure_telemetry
from sync_timer import bp as sync_blueprint
from targets_http import bp as targets_blueprint
from technician_tab import bp as tab_blueprint

configure_telemetry()
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(sync_blueprint)
app.register_functions(targets_blueprint)
app.register_functions(tab_blueprint)
