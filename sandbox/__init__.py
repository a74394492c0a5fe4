"""A local SuperOffice-compatible CRM for the demo and end-to-end tests.

The connector talks to it exactly as to SuperOffice Online (same URLs, auth headers,
status codes and JSON, and the system user sign-in and state API at the server root); only
``/__sandbox/...`` is sandbox-specific. Start it with
``python -m sandbox`` or, in tests, ``sandbox.server.run_in_thread(create_sandbox_app())``.
"""

from sandbox.server import connector_settings, create_sandbox_app, run_in_thread, stop_server

__all__ = ["connector_settings", "create_sandbox_app", "run_in_thread", "stop_server"]
