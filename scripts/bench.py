"""Generator benchmark (`make bench`): omnigen against the real `docker compose config -q`.

Measures, on this machine in this run:
  (a) `omnigen check` on an up-to-date folder (what pre-commit runs on every commit), target <= 1.5x yardstick
  (b) one cold `omnigen build` of the default profile (new process), target <= 3.5x yardstick
  (c) a batch of N generated profiles built in one process, target <= 10 ms per profile
  (d) peak memory (max RSS) of each
The yardstick is the real Compose binary validating the same output. Results go to
out/bench/generator.json and are printed as a table. Timings are medians of repeated runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def compose_binary() -> Path:
    import compose

    return Path(compose.__file__).resolve().parent / "docker-compose"


def measure(command: list[str], runs: int, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """Median wall seconds, max RSS (MiB) and median CPU seconds (user + system) of `command` over `runs`
    runs (after one warm-up). On a shared machine the CPU time is the steadier of the two times."""
    times: list[float] = []
    cpu: list[float] = []
    peak_kib = 0
    for index in range(runs + 1):
        # stderr goes to a file, not a pipe: a batch's warnings outgrow a pipe buffer and would block the child.
        with tempfile.TemporaryFile() as stderr:
            start = time.perf_counter()
            process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
            elapsed = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)
            if process.returncode != 0:
                stderr.seek(0)
                raise SystemExit(f"{' '.join(command[:4])} ... failed ({process.returncode}): {stderr.read().decode()[-4000:]}")
        if index:
            times.append(elapsed)
            cpu.append(usage.ru_utime + usage.ru_stime)
            peak_kib = max(peak_kib, usage.ru_maxrss)
    return statistics.median(times), peak_kib / 1024, statistics.median(cpu)


def make_profiles(folder: Path, count: int) -> list[Path]:
    kinds = ["vps", "bare-metal", "lxc-unprivileged", "lxc-privileged", "docker-desktop", "rootless"]
    paths = []
    for index in range(count):
        path = folder / f"tenant{index:04d}.toml"
        # Up to 29 calls: within every host kind's port budget (Docker Desktop's is the smallest, docs/capacity.md).
        calls = 5 + (index * 37) % 25
        path.write_text(
            "schema_version = 2\n"
            f'[project]\nname = "tenant{index:04d}"\n'
            f'[host]\nkind = "{kinds[index % len(kinds)]}"\n'
            f'[network]\nsubnet = "10.{index // 250}.{index % 250}.0/24"\npublic_ip = "203.0.113.{1 + index % 250}"\nbind_ip = "0.0.0.0"\n'
            f"[capacity]\nconcurrent_calls = {calls}\n"
            f"[ports]\nhttp = 8080\nhttps = 8443\n"
        )
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--output", type=Path, default=ROOT / "out" / "bench" / "generator.json")
    args = parser.parse_args()

    omnigen = str(VENV_BIN / "omnigen")
    # Measure omnigen as installed: pip byte-compiles a wheel at install time, while an editable checkout
    # under PYTHONDONTWRITEBYTECODE=1 recompiles every module on every start (about 60 ms here).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "omnigen")], check=True, stdout=subprocess.DEVNULL)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copy(ROOT / "profiles" / "lan-office.toml", work / "site.toml")
        out = work / "out"
        cache = work / "cache"
        # build.prebuilt: the OmniVoIP images are pulled, so no checkout of the application is needed here
        # (a build from a checkout only adds build contexts to the output; the work is the same).
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OMNIGEN_")},
            "XDG_CACHE_HOME": str(cache),
            "OMNIGEN_BUILD__PREBUILT": "true",
        }
        subprocess.run([omnigen, "build", str(work / "site.toml"), "-o", str(out), "-q"], check=True, env=env)

        yard_time, yard_rss, yard_cpu = measure(
            [str(compose_binary()), "-f", str(out / "docker-compose.yml"), "--env-file", str(out / ".env"), "config", "-q"], args.runs
        )
        results["yardstick: docker compose config -q"] = {"seconds": yard_time, "max_rss_mib": yard_rss, "cpu_seconds": yard_cpu}

        if "check" in subprocess.run([omnigen, "--help"], capture_output=True, text=True, check=True).stdout:
            check_time, check_rss, check_cpu = measure([omnigen, "check", str(work / "site.toml"), "-o", str(out)], args.runs, env=env)
            results["(a) omnigen check, up to date"] = {
                "seconds": check_time,
                "max_rss_mib": check_rss,
                "cpu_seconds": check_cpu,
                "ratio": check_time / yard_time,
                "target_ratio": 1.5,
            }

        build_time, build_rss, build_cpu = measure([omnigen, "build", "-q"], args.runs, cwd=work, env=env)
        results["(b) omnigen build, default profile (new process)"] = {
            "seconds": build_time,
            "max_rss_mib": build_rss,
            "cpu_seconds": build_cpu,
            "ratio": build_time / yard_time,
            "target_ratio": 3.5,
        }

        import_time, import_rss, import_cpu = measure([sys.executable, "-c", "import pydantic_settings, jinja2"], args.runs)
        results["    of which: import pydantic_settings + jinja2"] = {
            "seconds": import_time,
            "max_rss_mib": import_rss,
            "cpu_seconds": import_cpu,
            "ratio": import_time / yard_time,
        }

        batch_dir = work / "batch"
        batch_dir.mkdir()
        profiles = make_profiles(batch_dir, args.batch)
        batch_out = work / "batch-out"
        command = [omnigen, "build", "-q", "-o", str(batch_out), *map(str, profiles)]
        first, first_rss, first_cpu = measure(command, 0 + 1, env=env)  # generates secrets on the warm-up run, so this is a rebuild
        results[f"(c) batch of {args.batch} profiles, one process"] = {
            "seconds": first,
            "max_rss_mib": first_rss,
            "cpu_seconds": first_cpu,
            "ms_per_profile": first / args.batch * 1000,
            "target_ms_per_profile": 10,
        }

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    width = max(map(len, results))
    print(f"{'measurement':<{width}}  {'median':>9}  {'CPU':>9}  {'max RSS':>8}  vs yardstick / target")
    for name, row in results.items():
        extra = ""
        if "ratio" in row:
            extra = f"{row['ratio']:.2f}x" + (f" (target <= {row['target_ratio']}x)" if "target_ratio" in row else "")
        if "ms_per_profile" in row:
            extra = f"{row['ms_per_profile']:.2f} ms/profile (target <= {row['target_ms_per_profile']} ms)"
        print(f"{name:<{width}}  {row['seconds'] * 1000:7.1f}ms  {row['cpu_seconds'] * 1000:7.1f}ms  {row['max_rss_mib']:6.1f}MiB  {extra}")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
