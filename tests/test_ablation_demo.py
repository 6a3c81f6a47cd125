"""The README's main job, end to end with a tiny step budget: the demo preset trains, evaluates and
writes the table (with the published numbers beside ours) and the three figures."""

import csv
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_preset_runs_end_to_end(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-m", "experiments.ablation", "--preset=demo", "--rows=lp,lp_le_gb,lp_le_lt_lb_ca",
         "--epochs=1", "--steps_per_epoch=1", f"--output_dir={out}", "--save_images=2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(out / "table.csv") as f:
        rows = {r["row"]: r for r in csv.DictReader(f)}
    assert list(rows) == ["input", "lp", "lp_le_gb", "lp_le_lt_lb_ca"]
    # published numbers of spec section 8 sit beside ours
    assert float(rows["lp_le_lt_lb_ca"]["published_Rain100H_psnr"]) == 28.1573
    assert float(rows["lp_le_gb"]["published_Rain100H_ssim"]) == 0.8457
    for r in rows.values():
        for key in ("paper_psnr", "paper_ssim", "standard_psnr", "standard_ssim"):
            assert r[key] != "" and float(r[key]) > 0
    # the input row's gain over itself is zero, the others' is their standard PSNR minus the input's
    assert float(rows["input"]["gain_db_standard"]) == 0.0
    for row in ("lp", "lp_le_gb"):
        gain = float(rows[row]["standard_psnr"]) - float(rows["input"]["standard_psnr"])
        assert abs(float(rows[row]["gain_db_standard"]) - gain) < 1e-9
    table = (out / "table.md").read_text()
    assert "MENET-LB" in table and "28.16" in table
    for name in ("fig8_psnr_hist.png", "fig9_ssim_box.png", "fig10_grid.png"):
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for row in ("lp", "lp_le_gb", "lp_le_lt_lb_ca"):
        assert (out / "models" / row / "net.weights.h5").is_file()
        assert (out / "models" / row / "training_curves.png").is_file()
    # demo data: built-in photos, train and test disjoint
    train_clean = set(os.listdir(out / "data" / "clean_train"))
    test_clean = set(os.listdir(out / "data" / "clean_test"))
    assert train_clean and test_clean and not (train_clean & test_clean)


def test_seed_aggregation_reports_mean_min_max_and_missing_seeds():
    from experiments.ablation import aggregate_seeds

    runs = [
        {"row": "lp", "seed": 0, "paper_psnr": 30.0, "paper_ssim": 0.90, "standard_psnr": 32.0, "standard_ssim": 0.93},
        {"row": "lp", "seed": 1, "paper_psnr": 31.0, "paper_ssim": 0.92, "standard_psnr": 33.5, "standard_ssim": 0.94},
        {"row": "lp", "seed": 2, "paper_psnr": 29.5, "paper_ssim": 0.91, "standard_psnr": 32.5, "standard_ssim": 0.92},
        {"row": "lp_ca", "seed": 2, "paper_psnr": 31.5, "paper_ssim": 0.93, "standard_psnr": 34.0, "standard_ssim": 0.95},
        {"row": "lp_ca", "seed": 0, "paper_psnr": 32.5, "paper_ssim": 0.95, "standard_psnr": 35.0, "standard_ssim": 0.96},
    ]
    lp, ca, none = aggregate_seeds(runs, ["lp", "lp_ca", "le"], [0, 1, 2])
    assert (lp["n"], lp["missing"]) == (3, [])
    assert lp["standard_psnr_mean"] == pytest.approx((32.0 + 33.5 + 32.5) / 3)
    assert (lp["standard_psnr_min"], lp["standard_psnr_max"]) == (32.0, 33.5)
    assert lp["paper_ssim_mean"] == pytest.approx(0.91) and (lp["paper_ssim_min"], lp["paper_ssim_max"]) == (0.90, 0.92)
    # a missing seed is named, and the mean is over the seeds present only
    assert (ca["n"], ca["n_expected"], ca["seeds"], ca["missing"]) == (2, 3, [0, 2], [1])
    assert ca["paper_psnr_mean"] == pytest.approx(32.0) and ca["paper_psnr_max"] == 32.5
    assert (none["n"], none["missing"], none["standard_psnr_mean"]) == (0, [0, 1, 2], None)
    # asked for seeds 0 and 1 only: lp's seed 2 (an earlier invocation's) still counts, and is expected
    lp, ca = aggregate_seeds(runs, ["lp", "lp_ca"], [0, 1])
    assert (lp["n"], lp["n_expected"], lp["missing"]) == (3, 3, [])
    assert lp["standard_psnr_mean"] == pytest.approx((32.0 + 33.5 + 32.5) / 3)
    assert (ca["n"], ca["n_expected"], ca["seeds"], ca["missing"]) == (2, 3, [0, 2], [1])


def _demo_seeds(out, rows: str, seeds: str, *extra: str, stdout: list | None = None) -> list[dict]:
    """One-step demo ablation of ``rows`` over ``seeds`` into ``out``; the lines of its runs.csv (its
    output appended to ``stdout`` when given)."""
    result = subprocess.run(
        [sys.executable, "-m", "experiments.ablation", "--preset=demo", f"--rows={rows}", f"--seeds={seeds}",
         "--epochs=1", "--steps_per_epoch=1", f"--output_dir={out}", "--save_images=1", *extra],
        cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    if stdout is not None:
        stdout.append(result.stdout)
    with open(out / "runs.csv") as f:
        return list(csv.DictReader(f))


def test_demo_with_two_seeds_writes_runs_csv_and_the_seed_table(tmp_path):
    out = tmp_path / "seeds"
    runs = _demo_seeds(out, "lp,lp_le_lb", "0,1")
    assert [(r["row"], r["seed"]) for r in runs] == [("lp", "0"), ("lp_le_lb", "0"), ("lp", "1"), ("lp_le_lb", "1")]
    for r in runs:
        assert (out / "models" / r["row"] / f"seed{r['seed']}" / "net.weights.h5").is_file()
        assert float(r["standard_psnr"]) > 0
    # different seeds really train different models
    assert runs[0]["standard_psnr"] != runs[2]["standard_psnr"]
    with open(out / "table.csv") as f:
        table = {r["row"]: r for r in csv.DictReader(f)}
    lp = [float(r["standard_psnr"]) for r in runs if r["row"] == "lp"]
    assert float(table["lp"]["standard_psnr_mean"]) == pytest.approx(sum(lp) / 2)
    assert float(table["lp"]["standard_psnr_min"]) == min(lp) and table["lp"]["n"] == "2"
    assert "2/2" in (out / "table.md").read_text()
    # a third seed of one row, in a later invocation: runs.csv keeps every run, and the table counts it
    runs = _demo_seeds(out, "lp", "2")
    assert sorted((r["row"], r["seed"]) for r in runs) == [("lp", "0"), ("lp", "1"), ("lp", "2"),
                                                             ("lp_le_lb", "0"), ("lp_le_lb", "1")]
    with open(out / "table.csv") as f:
        table = {r["row"]: r for r in csv.DictReader(f)}
    lp = [float(r["standard_psnr"]) for r in runs if r["row"] == "lp"]
    assert (table["lp"]["n"], table["lp"]["n_expected"]) == ("3", "3")
    assert float(table["lp"]["standard_psnr_mean"]) == pytest.approx(sum(lp) / 3)

    # --report_only trains nothing: lp_ca has no run and is named missing; its folder is not even made.
    # A run's evaluation is reused while its recorded key holds (lp seed 1: the file is left as it was);
    # one whose key no longer matches (lp seed 0, key edited) is evaluated again, to the same numbers
    import hashlib
    import json

    s0, s1 = (out / "eval" / "lp" / f"seed{k}" / "summary.json" for k in (0, 1))
    key = json.loads(s0.read_text())["ablation_evaluation_key"]
    weights = (out / "models" / "lp" / "seed0" / "net.weights.h5").read_bytes()
    assert key["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    before0, before1 = json.loads(s0.read_text()), os.stat(s1).st_mtime_ns
    s0.write_text(json.dumps({**before0, "ablation_evaluation_key": {**key, "weights_sha256": "0" * 64}}))
    log: list[str] = []
    runs = _demo_seeds(out, "lp,lp_ca", "0,1,2", "--report_only", stdout=log)
    assert not (out / "models" / "lp_ca").exists()
    assert "lp_ca seed 0: not finished" in log[0] and "evaluation reused" in log[0]
    assert os.stat(s1).st_mtime_ns == before1  # not rewritten (an evaluation writes it anew, even if equal)
    after0 = json.loads(s0.read_text())
    assert after0["ablation_evaluation_key"] == key and after0["protocols"] == before0["protocols"]
    assert sorted((r["row"], r["seed"]) for r in runs) == [("lp", "0"), ("lp", "1"), ("lp", "2"),
                                                             ("lp_le_lb", "0"), ("lp_le_lb", "1")]
    assert "| 0/3 (missing 0 1 2) |" in (out / "table.md").read_text()


def test_rows_of_several_tables_in_one_run():
    from experiments.ablation import parse_rows, row_name, row_order

    got = parse_rows(["lp", "table2:menet_lb_deep", "variants:menet_lb_stable"], "table1")
    assert got == [("table1", "lp"), ("table2", "menet_lb_deep"), ("variants", "menet_lb_stable")]
    assert [r for _, r in parse_rows(["table1"], "table2")] == row_order("table1")  # a bare table: all its rows
    assert len(parse_rows(None, "table1")) == 10
    assert parse_rows(["table2"], "table1") == [("table2", "menet_gb_deep"), ("table2", "menet_lb_deep")]
    for specs, message in ((["nope:lp"], "no table 'nope'"), (["table2:lp"], r"no flagfile for \['lp'\] in table2"),
                           (["lp", "table1:lp"], "lp named twice")):
        with pytest.raises(ValueError, match=message):
            parse_rows(specs, "table1")
    assert row_name("table1", "lp_le_lt_lb_ca") == "L_pL_eL_t + LB + CA (MENET-LB)"
    assert row_name("table2", "menet_lb_deep") == "MENET-LB-deep (16 residual blocks)"
    assert row_name("variants", "menet_lb_stable") == "MENET-LB with stable weights"
    from experiments.config import load_flagfile, row_flagfile

    stable = load_flagfile(row_flagfile("menet_lb_stable", "variants"))
    plain = load_flagfile(row_flagfile("lp_le_lt_lb_ca", "table1"))
    assert stable.stable_weights and not plain.stable_weights
    assert {k: v for k, v in vars(stable).items() if k != "stable_weights"} == \
        {k: v for k, v in vars(plain).items() if k != "stable_weights"}


def test_an_interrupted_invocation_keeps_the_earlier_runs_csv_lines():
    from experiments.ablation import merge_runs

    previous = [{"row": "lp", "seed": "0", "standard_psnr": "32.9"}, {"row": "lp", "seed": "1", "standard_psnr": "33.0"},
                {"row": "lp_ca", "seed": "0", "standard_psnr": "33.7"}, {"row": "le", "seed": "0", "standard_psnr": "9"}]
    current = [{"row": "lp", "seed": 0, "standard_psnr": 32.8}]  # re-run (re-evaluated) in this invocation
    got = merge_runs(previous, current, ["lp", "lp_ca"], [0, 1])
    assert [(r["row"], int(r["seed"]), float(r["standard_psnr"])) for r in got] == [
        ("lp", 0, 32.8), ("lp_ca", 0, 33.7), ("le", 0, 9.0), ("lp", 1, 33.0)]  # le: an earlier plan's run, kept


def test_claims_are_differences_of_means_tested_against_the_seed_spread(tmp_path):
    from experiments.reproduction import claim_verdict

    t = claim_verdict({0: 34.1, 1: 34.0}, {0: 32.9, 1: 33.0})
    assert t["diff"] == pytest.approx(34.05 - 32.95) and t["exceeds_spread"] == "yes"
    assert claim_verdict({0: 33.0, 1: 33.4}, {0: 33.2, 1: 33.1})["exceeds_spread"] == "no (ranges overlap)"
    assert claim_verdict({0: 32.0, 1: 32.1}, {0: 33.0, 1: 33.5})["exceeds_spread"] == "yes, the other way"
    assert claim_verdict({0: 34.0}, {0: 33.0, 1: 33.1})["diff"] is None  # one seed: no spread to test against
    # end to end on a fake ablation folder: the page, its CSV copy, a claim measured and the rest named
    folder = tmp_path / "abl"
    folder.mkdir()
    header = "row,name,seed,paper_psnr,paper_ssim,standard_psnr,standard_ssim,train_seconds,model_dir\n"
    lines = [f"{row},{row},{seed},{p},0.9,{s},0.93,1,models/{row}/seed{seed}\n" for row, seed, p, s in (
        ("lp", 0, 31.5, 32.9), ("lp", 1, 31.6, 33.0), ("lp_le_fixed", 0, 31.9, 33.3), ("lp_le_fixed", 1, 32.0, 33.2))]
    (folder / "runs.csv").write_text(header + "".join(lines))
    (folder / "table.md").write_text("# title\n\n| the table |\n")
    doc = tmp_path / "docs" / "reproduction.md"
    notes = tmp_path / "notes.md"
    notes.write_text("L_e helps, by 0.30 dB.\n")
    command = [sys.executable, "-m", "experiments.reproduction", f"--ablation_dir={folder}", f"--doc={doc}",
               f"--runs_csv={tmp_path / 'docs' / 'runs.csv'}", f"--figures_dir={tmp_path / 'docs' / 'fig'}"]
    # a --discussion file that is not there: one line naming it, and no page
    r = subprocess.run(command + [f"--discussion={tmp_path / 'absent.md'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "absent.md" in r.stderr and not doc.exists()
    r = subprocess.run(command + [f"--discussion={notes}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    text = doc.read_text()
    assert "## What the numbers show" in text and "\nL_e helps, by 0.30 dB.\n" in text
    assert "| L_e helps over L_p | lp_le_fixed vs lp | +0.30 (+0.40) | yes | 2 / 2 |" in text
    assert "| GB beats fixed weights | lp_le_gb vs lp_le_fixed | not yet measured | - | 0 / 2 |" in text
    assert "| the table |" in text and (tmp_path / "docs" / "runs.csv").read_text() == header + "".join(lines)


def test_the_page_tells_one_training_under_two_names_from_two_trainings(tmp_path):
    """GB and LB with L_t log identical losses (w_t = 0, w_p = w_e = 1 in both): reported as the same
    training; two rows whose losses differ in one epoch are not; mean weights are the logged ones."""
    from experiments.reproduction import claims_training_table, mean_weights, same_training

    def history(row, seed, rows):
        d = tmp_path / "models" / row / f"seed{seed}"
        d.mkdir(parents=True)
        cols = sorted(rows[0])
        (d / "history.csv").write_text(",".join(cols) + "\n" + "".join(",".join(str(r[c]) for c in cols) + "\n" for r in rows))

    one = [{"epoch": e, "loss_p": 30.0 - e, "loss_e": 300.0 - e, "w_p": 1.0, "w_e": 1.0, "w_t": 0.0} for e in range(3)]
    for seed in (0, 1):
        history("lp_le_lt_gb_ca", seed, one)
        history("lp_le_lt_lb_ca", seed, one)
        other = [dict(r) for r in one]
        other[2]["loss_e"] = 297.5  # one epoch differs
        history("lp_le_lt_lb", seed, other)
        history("lp_le_lb", seed, [{"epoch": e, "loss_p": 31.0, "loss_e": 301.0, "w_p": 0.9 + 0.02 * seed,
                                    "w_e": 0.1 - 0.02 * seed} for e in range(3)])
    assert same_training(str(tmp_path), "lp_le_lt_lb_ca", "lp_le_lt_gb_ca", [0, 1]) == {0: (3, 3, 0.0), 1: (3, 3, 0.0)}
    drift = same_training(str(tmp_path), "lp_le_lt_lb", "lp_le_lt_lb_ca", [0, 1])
    assert drift[0][:2] == (2, 3) and drift[0][2] == pytest.approx(0.5 / 298)
    assert same_training(str(tmp_path), "lp_le_lt_lb_ca", "lp_le_lb", [0, 1]) == {0: (0, 3, pytest.approx(3 / 31)),
                                                                                 1: (0, 3, pytest.approx(3 / 31))}
    assert same_training(str(tmp_path), "lp_le_lt_lb_ca", "no_such_row", [0, 1]) == {}
    assert mean_weights(str(tmp_path), "lp_le_lb", [0, 1]) == pytest.approx({"w_p": 0.91, "w_e": 0.09})
    table = "\n".join(claims_training_table(str(tmp_path), [0, 1], {"lp_le_lt_gb_ca", "lp_le_lt_lb_ca", "lp_le_lt_lb", "lp_le_lb"}))
    assert "| LB beats GB (MENET: L_p L_e L_t + CA) | w_p 1, w_e 1, w_t 0 | w_p 1, w_e 1, w_t 0 | **yes**: equal L_p and L_e in every epoch (2 seeds) |" in table
    assert "| adding L_t helps (LB) | w_p 1, w_e 1, w_t 0 | w_p 0.91, w_e 0.09 | no |" in table
    assert ("| CA helps (LB) | w_p 1, w_e 1, w_t 0 | w_p 1, w_e 1, w_t 0 | **yes, up to float rounding**: seed 0: "
            "equal in the first 2 of 3 epochs, then within 0.17%; seed 1: equal in the first 2 of 3 epochs, then "
            "within 0.17% |") in table
