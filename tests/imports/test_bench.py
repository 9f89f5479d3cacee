"""``bench/import.py --quick`` runs and ends with the JSON line BENCHMARKS.md relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_ADMIN_URL

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.postgres
def test_the_quick_benchmark_prints_its_numbers_as_json(pg_url):
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "import.py"), "--quick", "--clients", "1000",
         "--pg-url", PG_ADMIN_URL],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"rows_per_s", "total_s", "peak_rss_mb"} <= summary.keys()
    assert summary["contacts"] == 5 * summary["clients"] == 500
    assert summary["rows_per_s"] > 0 and summary["peak_rss_mb"] > 0
