import sys

from mendrepro.numerics import pin_cpu_numerics

pin_cpu_numerics()  # before anything runs a torch kernel (mendrepro.numerics)

from mendrepro.report import TABLE_COMMANDS  # noqa: E402

if len(sys.argv) > 1 and sys.argv[1] in TABLE_COMMANDS:
    # Tables and figures need only pandas and matplotlib: skip importing torch and the models (seconds per job).
    from mendrepro.report.cli import main
else:
    # Under a local run with `fork_server: true` the job runs in a process forked from one that has imported torch
    # and transformers already (mendrepro.forkserver); None: run it here.
    from mendrepro.forkserver import forward

    status = forward(sys.argv[1:])
    if status is not None:
        sys.exit(status)
    from mendrepro.cli import main

sys.exit(main(sys.argv[1:]))
