#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""summarize.py - medians of benchmark result files, and the targets.

Reads one or more results files written by bench/run.sh (lines
"NAME events_per_s=N p50_us=N p99_us=N key=value ..."; anything else is
ignored), takes the median of every field of every case over the files
(one file = one run), and prints a Markdown table of the cases followed
by the targets of the storage issue, each computed from the medians:

  - 32 single-event clients >= 5x Redis's 32-client XADD figure
  - 32 single-event clients >= 10x PostgreSQL's 32-client figure
  - >= 50% of raw_fsync's 64-records-per-fdatasync figure
  - one client's p50 <= 1.3x raw_fsync's single-append p50
  - read-all >= 1M events/s
  - <= 48 bytes of index per event

  python3 bench/summarize.py results1.txt [results2.txt ...]
"""
import re
import statistics
import sys

LINE = re.compile(r"^([A-Za-z0-9_]+) events_per_s=")


def parse(paths):
    runs = {}  # case -> list of {field: value}
    order = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as fp:
            for line in fp:
                line = line.strip()
                m = LINE.match(line)
                if not m:
                    continue
                name = m.group(1)
                fields = {}
                for tok in line.split()[1:]:
                    if "=" not in tok:
                        continue
                    k, v = tok.split("=", 1)
                    try:
                        fields[k] = float(v)
                    except ValueError:
                        fields[k] = v
                if name not in runs:
                    runs[name] = []
                    order.append(name)
                runs[name].append(fields)
    return runs, order


def median(runs, name, field):
    vals = [r[field] for r in runs.get(name, [])
            if isinstance(r.get(field), float)]
    return statistics.median(vals) if vals else None


def first(runs, prefix):
    for name in runs:
        if name.startswith(prefix):
            return name
    return None


def fmt(v, digits=0):
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    runs, order = parse(argv[1:])
    nfiles = len(argv) - 1
    print(f"Medians over {nfiles} run(s); p50/p99 in microseconds.\n")
    print("| case | runs | events/s | p50 µs | p99 µs | notes |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    extras = ("events_per_fsync", "stored_cpu_pct", "bench_cpu_pct",
              "open_s", "recover_ms", "anon_bytes_per_event",
              "rss_bytes_per_event", "index_bytes_per_event")
    for name in order:
        notes = []
        for k in extras:
            v = median(runs, name, k)
            if v is not None:
                notes.append(f"{k}={fmt(v, 1 if v < 100 else 0)}")
        print(f"| {name} | {len(runs[name])} | "
              f"{fmt(median(runs, name, 'events_per_s'))} | "
              f"{fmt(median(runs, name, 'p50_us'))} | "
              f"{fmt(median(runs, name, 'p99_us'))} | {' '.join(notes)} |")

    def eps(name):
        return median(runs, name, "events_per_s") if name else None

    print("\nTargets (from the medians above):\n")

    per_file = [parse([path])[0] for path in argv[1:]]

    def check(label, ours_case, ref_case, want, field="events_per_s",
              higher=True):
        ours = median(runs, ours_case, field)
        ref = median(runs, ref_case, field)
        if ours is None or ref is None or ref == 0:
            print(f"- {label}: not measured")
            return
        ratio = ours / ref
        line = f"- {label}: {fmt(ours)} vs {fmt(ref)} = {ratio:.2f}x"
        if want is not None:
            ok = ratio >= want if higher else ratio <= want
            line += (f" (target {'>=' if higher else '<='} {want}x): "
                     f"{'MET' if ok else 'MISSED'}")
        # the peers share the machine with us run by run: the ratio
        # within each run is steadier than the ratio of the medians
        within = []
        for r in per_file:
            o, f = median(r, ours_case, field), median(r, ref_case, field)
            if o is not None and f:
                within.append(o / f)
        if len(within) > 1:
            line += (f"; within each run: "
                     f"{', '.join(f'{x:.2f}x' for x in within)} "
                     f"(median {statistics.median(within):.2f}x)")
        print(line)

    check("append c32 b1 vs redis_xadd c32", "stored_append_c32_b1",
          "redis_xadd_aof_always_c32", 5)
    check("append c32 b1 vs postgres_insert c32", "stored_append_c32_b1",
          "postgres_insert_c32", 10)
    check("append c32 b1 vs postgres_append c32", "stored_append_c32_b1",
          "postgres_append_c32", 10)
    check("append c32 b64 vs raw_fsync_group (64 per fdatasync)",
          "stored_append_c32_b64", "raw_fsync_group", 0.5)
    check("append c32 b1 vs raw_fsync_group (64 per fdatasync)",
          "stored_append_c32_b1", "raw_fsync_group", 0.5)
    check("append c1 b1 p50 vs raw_fsync_single p50", "stored_append_c1_b1",
          "raw_fsync_single", 1.3, field="p50_us", higher=False)
    check("IPC alone (no disk): status c1 p50 vs raw_fsync_single p50",
          "stored_status_c1", "raw_fsync_single", None, field="p50_us")
    check("IPC alone (no disk): status c32 vs redis_xadd c32",
          "stored_status_c32", "redis_xadd_aof_always_c32", None)
    ra = first(runs, "stored_read_all_")
    v = eps(ra)
    if v is None:
        print("- read-all >= 1,000,000 events/s: not measured")
    else:
        print(f"- read-all >= 1,000,000 events/s: {fmt(v)}: "
              f"{'MET' if v >= 1e6 else 'MISSED'}")
    im = first(runs, "stored_index_mem_")
    for field, what in (("anon_bytes_per_event", "anonymous RSS"),
                        ("index_bytes_per_event", "STATUS index_bytes"),
                        ("rss_bytes_per_event", "VmRSS incl. mapped log")):
        v = median(runs, im, field) if im else None
        if v is None:
            print(f"- index <= 48 B/event ({what}): not measured")
        else:
            print(f"- index <= 48 B/event ({what}): {v:.1f}: "
                  f"{'MET' if v <= 48 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
