import sys

from mendrepro.cli import main

sys.exit(main())
