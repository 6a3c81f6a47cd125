"""The README's main job, end to end with a tiny step budget: the demo preset trains, evaluates and
writes the table (with the published numbers beside ours) and the three figures."""

import csv
import os
import subprocess
import sys

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
