import sys

from mendrepro.report import TABLE_COMMANDS

if len(sys.argv) > 1 and sys.argv[1] in TABLE_COMMANDS:
    # Tables and figures need only pandas and matplotlib: skip importing torch and the models (seconds per job).
    from mendrepro.report.cli import main
else:
    from mendrepro.cli import main

sys.exit(main(sys.argv[1:]))
