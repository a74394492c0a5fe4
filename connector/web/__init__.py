"""The web process: app.py is the app factory (gunicorn serves ``create_app_from_env()``);
webhooks, page, unsubscribe, admin, exports and health are one blueprint each, and every module
reaches the process's services through ``context.get_services()``. Nothing outside this
package imports it."""
