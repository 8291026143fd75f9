"""The benchmark runs and compares like with like (no timing assertions: it is not a timed test)."""

from onceflow.bench import bench, format_report


def test_bench_small_run_reports_positive_figures_and_equal_sums():
    result = bench(records=2000, repeat=1)
    for side in ("model", "bare"):
        for key in ("seconds", "records_per_s", "events", "events_per_s"):
            assert result[side][key] > 0, (side, key)
    assert result["ratio"] > 0
    assert result["records"] == 2000
    assert set(result["machine"]) >= {"platform", "python", "cpus"}
    assert result["sums_equal"]
    assert result["bare_sums"] == result["model_sums"]
    assert len(result["model_sums"]) == 64  # every key of the reference workload
    report = format_report(result)
    assert "records/s" in report and "events/s" in report and "ratio" in report
