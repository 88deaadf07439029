import sys

from rep4d.cli import main

sys.exit(main())
