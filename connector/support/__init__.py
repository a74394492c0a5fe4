"""What support staff do with the connector's jobs: jobs.py (list, show, retry, purge over
RQ's registries) and dry_run.py (what a retry would do now). The ``jobs`` command and the admin
page are thin layers over them."""
