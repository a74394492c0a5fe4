"""The connector's RQ worker."""

from rq import Worker

from workers import runtime


class ConnectorWorker(Worker):
    """RQ's forking worker that looks at the purposes file before each job, so an edited
    config/purposes.yaml is picked up without a restart (an invalid edit is refused and the
    last good config stays in force; see connector.config.LiveConfig)."""

    def execute_job(self, job, queue):
        runtime.current().live_config.refresh()
        return super().execute_job(job, queue)
