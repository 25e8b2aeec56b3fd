"""The benchmark's FLOP model against XLA's own count (timings are never asserted)."""

from crl.apps.bench import bench_buffer, update_flops, update_setup


def test_update_flop_count_matches_xla_cost_analysis():
    # Unrolled blocks: XLA's cost analysis counts a scanned body once, an unrolled one fully.
    step, ts, data, key = update_setup(depth=8, width=128, batch=64, scan=False)
    cost = step.lower(ts, data, key).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    ratio = cost["flops"] / update_flops(64, 128, 8)
    # XLA also counts the elementwise work (LayerNorm, swish, logits); matmuls dominate.
    assert 1.0 <= ratio < 1.3, ratio


def test_buffer_section_reports_both_capacities():
    rows = bench_buffer(num_envs=4, batch=16, repeats=1)
    assert [r["capacity_per_env"] for r in rows] == [1000, 10_000]
    # the sizes it timed, and its own unit conversion (timings themselves are not asserted)
    assert [round(r["buffer_mb"], 4) for r in rows] == [round(c * 4 * 38 * 4 / 2**20, 4) for c in (1000, 10_000)]
    for r in rows:
        assert (r["num_envs"], r["batch"]) == (4, 16)
        assert r["insert_ms"] == 1e3 * r["insert_s"] and r["sample_relabel_ms"] == 1e3 * r["sample_relabel_s"]


def test_command_exits_zero_and_writes_json(tmp_path):
    """`crl-bench` as users run it (a console script exits with main's return value)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    cmd = [sys.executable, "-c", "import sys; from crl.apps.bench import main; sys.exit(main())",
           "--quick", "--sections", "buffer", "--num-envs", "4", "--out", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["section"] for r in rows] == ["ceiling", "buffer", "buffer"]
    assert rows[0]["flops"] > 0
