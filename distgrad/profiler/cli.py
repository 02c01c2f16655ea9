"""``distgrad-timeline``: merge the ranks' timelines into one trace, check traces, draw a step.

    distgrad-timeline merge timeline/ -o timeline.json     # one process per rank; open in Perfetto
    distgrad-timeline check timeline/timeline-rank0.json   # against the trace-event format
    distgrad-timeline plot timeline.json -o step.png --step -1   # a Gantt chart of one training step
"""
from __future__ import annotations

import argparse
import os
import sys

from distgrad.profiler import trace


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="distgrad-timeline", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    sub = p.add_subparsers(dest="command", required=True)
    merge = sub.add_parser("merge", help="merge a folder's timeline-rank<r>.json into one trace")
    merge.add_argument("folder")
    merge.add_argument("-o", "--out", help="default: <folder>/timeline.json")
    check = sub.add_parser("check", help="check traces against the trace-event format")
    check.add_argument("files", nargs="+")
    plot = sub.add_parser("plot", help="draw one training step of a merged trace (needs matplotlib)")
    plot.add_argument("trace")
    plot.add_argument("-o", "--out", required=True)
    plot.add_argument("--step", type=int, default=-1, help="which step (of rank 0's), -1 for the last")
    plot.add_argument("--title")
    args = p.parse_args(argv)
    if args.command == "merge":
        out = args.out or os.path.join(args.folder, "timeline.json")
        merged = trace.merge_folder(args.folder, out)
        print(f"distgrad-timeline: {len(merged['otherData']['ranks'])} rank(s) merged into {out}")
        return 0
    if args.command == "check":
        failed = 0
        for path in args.files:
            problems = trace.validate_trace(trace.load(path))
            print(f"{path}: " + ("ok" if not problems else "; ".join(problems[:5])))
            failed += bool(problems)
        return 1 if failed else 0
    from distgrad.profiler.plot import plot_step
    print(plot_step(trace.load(args.trace), args.out, args.step, args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
