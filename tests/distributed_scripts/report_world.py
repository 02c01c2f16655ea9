"""Each rank writes what it sees: ``report_world.py REPORT_DIR [EXIT_STATUS]``, then exits with it."""
import os
import sys

import distgrad as dg
import distgrad.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import write_report  # noqa: E402

dist.init_process_group()
write_report(sys.argv[1], dist.get_rank(), {"world_size": dist.get_world_size(), "local_rank": dist.get_local_rank(),
                                            "blas_threads": dg.get_num_threads()})
dist.destroy_process_group()
sys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
