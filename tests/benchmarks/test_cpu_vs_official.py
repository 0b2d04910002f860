"""The CPU side-by-side benchmark: argument checks, the worker protocol, ratios, verdicts, the table, a smoke run."""

import io
import json
import subprocess
import sys

import pytest

from benchmarks import cpu_vs_official, step_server


def test_rejects_unknown_rows_frameworks_and_a_peer_dir_without_the_official_code(tmp_path, capsys):
    for argv, message in ((["--rows", "resnet20,vgg99"], "vgg99"), (["--frameworks", "torch"], "torch"),
                          (["--window-s", "-1"], "-1"), (["--rounds", "0"], "--rounds must be a positive integer; got 0"),
                          (["--peer-dir", str(tmp_path)], str(tmp_path))):
        with pytest.raises(SystemExit):
            cpu_vs_official.parse_args(argv)
        assert message in capsys.readouterr().err


def test_defaults_are_the_issue_method():
    args = cpu_vs_official.parse_args([])
    assert args.rows == cpu_vs_official.ROWS and len(args.rows) == 7
    assert args.sizes == {"batch": 64, "rounds": 5, "warmup": 2, "window_s": 2.0} and args.threads == 2
    assert cpu_vs_official.parse_args(["--quick", "--rounds", "3"]).sizes["rounds"] == 3


def test_official_code_left_out_with_a_reason():
    args = cpu_vs_official.parse_args([])
    assert "--peer-dir" in cpu_vs_official.official_unavailable(args)
    args.official_missing = "no peer"
    assert set(cpu_vs_official.worker_commands(args)) == {"tf", "jax"}


def test_official_worker_waits_passively_unless_told(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    args = cpu_vs_official.parse_args([])
    args.official_missing, args.peer_dir = None, "peer"
    assert cpu_vs_official.worker_commands(args)["official"][1] == {"OMP_WAIT_POLICY": "PASSIVE"}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert cpu_vs_official.worker_commands(args)["official"][1] == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_window_steps_fill_the_window():
    assert cpu_vs_official.steps_for(0.1, 2.0) == 20
    assert cpu_vs_official.steps_for(7.0, 2.0) == 1  # a slow step is timed alone
    assert cpu_vs_official.steps_for(0.0, 2.0) >= 1


def test_serve_answers_each_request_and_reports_errors():
    calls = []
    prepared = step_server.Prepared(7, {"train": lambda: calls.append("t"), "infer": lambda: calls.append("i")})
    requests = [{"op": "prepare", "row": "a"}, {"op": "time", "row": "a", "phase": "train", "steps": 3},
                {"op": "time", "row": "a", "phase": "bogus", "steps": 1}, {"op": "drop", "row": "a"},
                {"op": "explode", "row": "a"}]
    out = io.StringIO()
    step_server.serve(lambda row: prepared, warmup=2, stdin=io.StringIO("".join(json.dumps(r) + "\n" for r in requests)),
                      stdout=out)
    replies = [json.loads(line[len(step_server.REPLY_MARK):]) for line in out.getvalue().splitlines()]
    assert replies[0]["params"] == 7 and set(replies[0]["estimate_s"]) == {"train", "infer"}
    assert replies[1]["seconds_per_step"] >= 0 and calls.count("t") == 2 + 3
    assert "bogus" in replies[2]["error"] and replies[3] == {} and "explode" in replies[4]["error"]
    with pytest.raises(ValueError, match="warmup"):
        step_server.serve(lambda row: prepared, warmup=0, stdin=io.StringIO(""), stdout=out)


def test_worker_raises_with_the_workers_name_on_an_error_or_an_exit():
    fake = ("import sys\nfor line in sys.stdin:\n    print('banner')\n"
            f"    print({step_server.REPLY_MARK!r} + '{{\"error\": \"ValueError: no model\"}}', flush=True)\n")
    worker = step_server.Worker("fake", [sys.executable, "-c", fake])
    with pytest.raises(RuntimeError, match="fake worker, prepare x: ValueError: no model"):
        worker.request("prepare", "x")
    worker.close()
    dead = step_server.Worker("dead", [sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match="dead worker exited with code 3"):
        dead.request("prepare", "x")


def _measured(official_s, tf_s, jax_s, params=(100, 100, 100)):
    return {"params": dict(zip(("official", "tf", "jax"), params)),
            "seconds": {fw: {"train": list(s), "infer": [t / 4 for t in s]}
                        for fw, s in (("official", official_s), ("tf", tf_s), ("jax", jax_s))}}


def test_ratios_are_medians_of_per_round_ratios_and_judged_by_the_goals():
    summary = cpu_vs_official.summarize("resnet20", _measured([1.0, 2.0, 1.0], [0.5, 1.0, 2.0], [1.0, 1.0, 2.0]), 64)
    assert summary["rates"]["official"]["train"] == 64.0 and summary["rates"]["tf"]["train"] == 64.0
    assert summary["ratios"]["tf/official train"] == 2.0  # rounds: 2.0, 2.0, 0.5
    assert summary["verdicts"]["tf/official train"] == "PASS"
    assert summary["ratios"]["jax/tf train"] == 1.0 and summary["verdicts"]["jax/tf infer"] == "PASS"
    slow_jax = cpu_vs_official.summarize("resnet20", _measured([1.0], [1.0], [1.3]), 64)
    assert slow_jax["verdicts"]["jax/tf train"] == "FAIL" and slow_jax["verdicts"]["tf/official train"] == "PASS"


def test_table_has_every_framework_ratio_verdict_and_flags_unequal_parameter_counts():
    summaries = [cpu_vs_official.summarize("resnet20", _measured([1.0], [0.5], [0.5]), 64),
                 cpu_vs_official.summarize("sdnet18", _measured([1.0], [2.0], [2.0], params=(5, 6, 6)), 64)]
    meta = {"date": "2026-12-01", "machine": "m", "command": "c", "sizes": {"batch": 64, "rounds": 1}, "notes": ["n"]}
    table = cpu_vs_official.render(summaries, meta)
    assert "| ResNet-20 | 100, 100, 100 | 64.0 / 256.0 | 128.0 / 512.0 | 128.0 / 512.0 | 2.00x PASS / 2.00x PASS |" \
           " 1.00x PASS / 1.00x PASS |" in table
    assert "| SDNet-18 | DIFFER: 5, 6, 6 |" in table and "0.50x FAIL" in table and "- n" in table


def test_table_without_the_official_code_has_only_ours():
    measured = _measured([1.0], [1.0], [1.0])
    del measured["seconds"]["official"], measured["params"]["official"]
    summary = cpu_vs_official.summarize("resnet20", measured, 64)
    assert set(summary["ratios"]) == {"jax/tf train", "jax/tf infer"}
    table = cpu_vs_official.render([summary], {"date": "d", "machine": "m", "command": "c",
                                               "sizes": {"batch": 64, "rounds": 1}, "notes": []})
    assert "official" not in table.split("\n")[5] and "jax/tf" in table


@pytest.mark.slow
def test_quick_run_of_ours_alone_through_the_command(tmp_path):
    command = [sys.executable, "-m", "benchmarks.cpu_vs_official", "--quick", "--rows", "resnet20",
               "--frameworks", "official,tf", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "official code left out: no --peer-dir" in done.stdout
    result = json.loads((tmp_path / "cpu_vs_official.json").read_text())
    assert result["rows"][0]["params"] == {"tf": 272_474} and result["rows"][0]["rates"]["tf"]["train"] > 0
    assert (tmp_path / "cpu_vs_official.md").exists()
