"""Where one onboarding's time goes: the wall and CPU time of each step of
``workers.jobs.onboard_with``, per onboarding, run in this process as a worker runs it.

    .venv/bin/python bench/onboarding_steps.py                 # 200 onboardings
    .venv/bin/python bench/onboarding_steps.py --persons 500

The servers are bench/harness.py's: the sandbox CRM in a process of its own (so its work is
not counted here and does not hold this process's interpreter lock), the SMTP sink in a
thread, the embedded Redis (``appendfsync always``) and the evidence database as the embedded
SQLite file. The services are built as ``consent-connector worker`` builds them, and each
onboarding runs as ``ConnectorWorker.perform_job`` runs a job: with its queue's CRM priority
and its counts sent in one round trip at its end. RQ itself is left out (bench/worker_bench.py
measures the whole worker).

Each step is timed by wrapping the function the job calls: wall time (``perf_counter``) and
this thread's CPU time (``thread_time``; the SMTP sink's thread is not counted). "the rest" is
what no step covers: the person's lock, planning, the counters, the job's own code. The first
five onboardings (loading the translations and templates, the first connections) are not
counted.
"""

import argparse
import collections
import functools
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import Servers, print_machine  # noqa: E402

WARM_UP = 5


class StepTimes:
    """Wall and CPU seconds per step, summed over the onboardings timed."""

    def __init__(self):
        self.wall = collections.Counter()
        self.cpu = collections.Counter()
        self.counting = False

    def wrap(self, step: str, function):
        """``function``, timed as ``step`` while ``counting``."""
        @functools.wraps(function)
        def timed(*args, **kwargs):
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                if self.counting:
                    self.cpu[step] += time.thread_time() - cpu
                    self.wall[step] += time.perf_counter() - wall
        return timed


def time_the_steps(services, jobs, facts, times: StepTimes) -> None:
    """Wrap each step of an onboarding (the functions ``workers.jobs.onboard_with`` calls)."""
    crm = services.crm
    crm.get_person = times.wrap("CRM: GET Person (get_person)", crm.get_person)
    crm.set_consent = times.wrap("CRM: PUT Consent (set_consent)", crm.set_consent)
    services.ledger.record = times.wrap("SQL: ledger.record (the consent)",
                                        services.ledger.record)
    facts.claim_confirmation_mail = times.wrap("SQL: claim_confirmation_mail",
                                               facts.claim_confirmation_mail)
    facts.mark_onboarded = times.wrap("SQL: mark_onboarded (+ mail sent)", facts.mark_onboarded)
    services.links.make_link = times.wrap("make_link (the signed link)",
                                          services.links.make_link)
    jobs.render_confirmation = times.wrap("render_confirmation (the MIME mail)",
                                          jobs.render_confirmation)
    services.mailer.deliver = times.wrap("SMTP: deliver", services.mailer.deliver)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--persons", type=int, default=200,
                        help="onboardings timed (default 200)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="onboarding-steps-"))
    servers = Servers(folder, crm_process=True)
    try:
        servers.start()
        print_machine("onboarding steps", servers, ["SQLAlchemy", "requests"])
        os.environ.update(servers.connector_env(folder / "data", budget=100_000))

        from connector import metrics
        from connector.crm.budget import Priority, crm_priority
        from connector.evidence import facts
        from connector.services import build_services
        from connector.settings import Settings
        import workers.jobs as jobs

        services = build_services(Settings.from_env(os.environ), redis_timeout=None)
        times = StepTimes()
        time_the_steps(services, jobs, facts, times)
        persons = servers.create_persons(WARM_UP + args.persons, "Bench", "Steps{n}",
                                         "steps-{n}@example.org")
        cpu = wall = 0.0
        for number, person_id in enumerate(persons):
            times.counting = number >= WARM_UP
            started_cpu, started = time.thread_time(), time.perf_counter()
            with crm_priority(Priority.EVENTS), metrics.counted_together(services.redis):
                jobs.onboard_with(services, person_id, str(uuid.uuid4()),
                                  f"steps-{uuid.uuid4().hex}")
            if times.counting:
                cpu += time.thread_time() - started_cpu
                wall += time.perf_counter() - started
        report(times, cpu, wall, args.persons, servers.sink.count)
    finally:
        servers.stop()
        shutil.rmtree(folder, ignore_errors=True)


def report(times: StepTimes, cpu: float, wall: float, count: int, mails: int) -> None:
    """Per onboarding: each step's wall and CPU ms and share of the whole, then the rest."""
    print(f"\n{count} onboardings timed ({mails} mails received); per onboarding: "
          f"wall {wall / count * 1000:.1f} ms, CPU {cpu / count * 1000:.1f} ms (this thread)")
    print(f"{'step':<40} {'wall ms':>8} {'CPU ms':>7} {'of wall':>8} {'of CPU':>7}")
    rows = [(step, times.wall[step], times.cpu[step]) for step in times.wall]
    rows.append(("the rest (lock, plan, counts, the job)",
                 wall - sum(times.wall.values()), cpu - sum(times.cpu.values())))
    for step, step_wall, step_cpu in sorted(rows, key=lambda row: -row[1]):
        print(f"{step:<40} {step_wall / count * 1000:>8.2f} {step_cpu / count * 1000:>7.2f} "
              f"{step_wall / wall:>8.0%} {step_cpu / cpu:>7.0%}")


if __name__ == "__main__":
    main()
