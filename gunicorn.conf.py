"""gunicorn settings (read from the working directory): JSON logs like the rest of the
connector, an access log without client addresses or personal-link tokens, and threaded
workers that a slow or idle client cannot hold.

gunicorn's sync workers serve one connection at a time and rely on a buffering proxy in front
(gunicorn's deployment docs): without one, a few clients that connect and send nothing hold
every worker, and SuperOffice's webhooks wait (and fail) behind them. gthread workers hand a
connection that sends nothing within 5 s back to their poller, so a thread is held at most that
long, and WEB_THREADS threads per process take that many such clients before anyone waits;
`timeout` still restarts a worker whose thread hangs.
"""

import os

from connector.logs import GUNICORN_ACCESS_LOG_FORMAT, gunicorn_logconfig

worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))
keepalive = 5  # seconds an idle kept-alive connection stays open
timeout = 30

logconfig_dict = gunicorn_logconfig()
accesslog = "-"
access_log_format = GUNICORN_ACCESS_LOG_FORMAT
control_socket_disable = True  # gunicorn 27's ~/.gunicorn control socket is not needed
