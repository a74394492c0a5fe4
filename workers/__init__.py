"""Background work: RQ jobs, queues and the confirmation mail."""
