#!/usr/bin/python3
"""performance_chart.py - draws docs/performance-write-size.png: single-flow
TCP throughput against write size, usock (two stacks on the in-memory wire,
one core) beside the Linux kernel (loopback in a namespace), from the JSON
that `bench/run.sh --json` prints (its "write_size_sweep").

Usage: /usr/bin/python3 scripts/performance_chart.py RUN.json [OUT.png]
Needs matplotlib (Debian: python3-matplotlib, importable from /usr/bin/python3).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    output = sys.argv[2] if len(sys.argv) == 3 else "docs/performance-write-size.png"
    with open(sys.argv[1]) as source:
        run = json.load(source)
    sweep = run["write_size_sweep"]
    sizes = [point["write_size"] for point in sweep]
    usock = [point["usock_MBps"] for point in sweep]
    kernel = [point["kernel_MBps"] for point in sweep]
    machine = run.get("machine", {})

    figure, axes = plt.subplots(figsize=(8, 4.8), dpi=100)
    axes.plot(sizes, usock, marker="o", label="usock (in-memory wire, one core)")
    if all(value is not None for value in kernel):
        axes.plot(sizes, kernel, marker="s", label="Linux kernel (loopback)")
    axes.set_xscale("log", base=2)
    axes.set_xticks(sizes)
    axes.set_xticklabels([size_label(size) for size in sizes])
    axes.set_xlabel("bytes per send() and recv()")
    axes.set_ylabel("throughput, MB/s")
    axes.set_title("Single-flow TCP throughput against write size")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    if machine:
        figure.text(0.01, 0.01, "%s, %s CPUs, Linux %s" % (machine.get("cpu", "?"),
                                                           machine.get("cpus", "?"),
                                                           machine.get("kernel", "?")),
                    fontsize=7, alpha=0.7)
    figure.tight_layout()
    figure.savefig(output)
    print("wrote " + output)


def size_label(size):
    if size >= 1024 and size % 1024 == 0:
        return "%d KiB" % (size // 1024)
    return "%d B" % size


if __name__ == "__main__":
    main()
