import sys

from nteach.cli import main

sys.exit(main())
