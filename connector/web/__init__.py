"""The web process: app.py is the app factory (gunicorn serves ``create_app_from_env()``);
every other module is one blueprint, and they reach the process's services through
``context.get_services()``. Nothing outside this package imports it."""
