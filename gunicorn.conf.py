"""gunicorn settings (read from the working directory): JSON logs like the rest of the
connector, and an access log without client addresses or personal-link tokens."""

from connector.logs import GUNICORN_ACCESS_LOG_FORMAT, gunicorn_logconfig

logconfig_dict = gunicorn_logconfig()
accesslog = "-"
access_log_format = GUNICORN_ACCESS_LOG_FORMAT
control_socket_disable = True  # gunicorn 27's ~/.gunicorn control socket is not needed
