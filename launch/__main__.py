import sys

from distgrad.launch.main import main

sys.exit(main())
