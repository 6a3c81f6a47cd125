"""experiments.ship_model: the card it writes holds the scores of the weights it copies, --text_only
rewrites the texts and nothing measured, and damaged weights or a test image seen in training are refused."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _ship(*args):
    return subprocess.run([sys.executable, "-m", "experiments.ship_model", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)


def _pairs(folder, seed, n=2):
    from menet_tf.imageio import write_image

    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    for i in range(1, n + 1):
        clean = rng.integers(40, 200, (232, 240, 3)).astype(np.float64)
        write_image(os.path.join(folder, f"norain-{i}.png"), clean)
        write_image(os.path.join(folder, f"rain-{i}.png"), np.clip(clean + rng.choice([0, 80], clean.shape[:2], p=[.9, .1])[..., None], 0, 255))


def test_ship_then_rewrite_texts_only(tmp_path):
    from experiments import evaluation
    from menet_tf.model import build_derain_net, net_config, save_net

    train, test = str(tmp_path / "train"), str(tmp_path / "test")
    _pairs(train, 1), _pairs(test, 2)
    model = str(tmp_path / "model")
    save_net(build_derain_net(1, False), model, net_config(1, False))
    with open(os.path.join(model, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(model, "config.json"), "w") as f:
        json.dump({**config, "data_dir": train}, f)
    (tmp_path / "data.md").write_text("first data text")
    (tmp_path / "commands.sh").write_text("echo first")
    out = str(tmp_path / "shipped")
    common = ["--name=tiny-test", f"--output_root={out}", f"--training_data_file={tmp_path / 'data.md'}",
              f"--commands_file={tmp_path / 'commands.sh'}"]

    r = _ship(*common, f"--model_dir={model}", "--summary=first summary", "--train_wall_time_s=3",
              f"--test_dirs=held out={test}")
    assert r.returncode == 0, r.stderr[-2000:]
    folder = os.path.join(out, "tiny-test")
    with open(os.path.join(folder, "tiny-test.json")) as f:
        card = json.load(f)
    predict, multiple, _ = evaluation.load_predictor(model_dir=model)
    measured = evaluation.evaluate_model(predict, test, protocols="both", save_images=0, multiple=multiple, progress=False)
    for s in card["scores"]:
        assert s["test_set"] == "held out" and abs(s["psnr"] - measured["protocols"][s["protocol"]]["psnr"]) < 1e-9
        # every image's scores are on the card too, and the card's score is their mean
        want = measured["per_image"][s["protocol"]]
        assert [row[0] for row in s["per_image"]] == [row[0] for row in want] and len(want) == s["num_images"]
        np.testing.assert_allclose([row[1:] for row in s["per_image"]], [row[1:] for row in want], atol=1e-9)
        assert abs(np.mean([row[1] for row in s["per_image"]]) - s["psnr"]) < 1e-9
    assert {s["protocol"] for s in card["scores"]} == {"standard", "paper"}

    # --text_only: new texts, the same weights, scores and sha256; the .md follows the JSON
    (tmp_path / "data.md").write_text("second data text")
    r = _ship(*common, "--text_only", "--summary=second summary")
    assert r.returncode == 0, r.stderr[-2000:]
    with open(os.path.join(folder, "tiny-test.json")) as f:
        card2 = json.load(f)
    assert (card2["summary"], card2["training_data"]) == ("second summary", "second data text")
    assert {k: v for k, v in card2.items() if k not in ("summary", "training_data")} == \
        {k: v for k, v in card.items() if k not in ("summary", "training_data")}
    md = open(os.path.join(folder, "tiny-test.md")).read()
    assert "second summary" in md and "second data text" in md and "first summary" not in md
    with open(os.path.join(folder, "net.weights.h5"), "rb") as f, open(os.path.join(model, "net.weights.h5"), "rb") as g:
        assert f.read() == g.read()

    # --add_scores: a new set goes last; a set measured again is replaced whole, in its place on the card
    base = ["--name=tiny-test", f"--output_root={out}", "--add_scores"]
    r = _ship(*base, f"--rain_free_dirs=free={test}")
    assert r.returncode == 0, r.stderr[-2000:]
    r = _ship(*base, f"--test_dirs=held out={test}")
    assert r.returncode == 0, r.stderr[-2000:]
    card3 = json.load(open(os.path.join(folder, "tiny-test.json")))
    assert [(s["test_set"], s["protocol"], bool(s.get("rain_free"))) for s in card3["scores"]] == \
        [("held out", "standard", False), ("held out", "paper", False), ("free", "standard", True)]
    assert card3["scores"][:2] == card2["scores"]  # the same weights measured again: the same scores
    free = evaluation.evaluate_model(predict, test, protocols="standard", save_images=0, multiple=multiple,
                                     progress=False, rain_free=True)
    assert card3["scores"][2]["psnr"] == free["protocols"]["standard"]["psnr"]
    assert card3["scores"][2]["per_image"] == free["per_image"]["standard"]
    assert {k: v for k, v in card3.items() if k != "scores"} == {k: v for k, v in card2.items() if k != "scores"}
    # --self_ensemble: the set is also scored with the mean over four flips, a separate entry (new: last)
    r = _ship(*base, f"--test_dirs=held out={test}", "--self_ensemble")
    assert r.returncode == 0, r.stderr[-2000:]
    card4 = json.load(open(os.path.join(folder, "tiny-test.json")))
    assert [(s["test_set"], s["protocol"], bool(s.get("rain_free")), bool(s.get("self_ensemble")))
            for s in card4["scores"]] == [("held out", "standard", False, False), ("held out", "paper", False, False),
                                          ("free", "standard", True, False), ("held out", "standard", False, True)]
    assert card4["scores"][:3] == card3["scores"]
    se_predict, se_multiple, se_name = evaluation.load_predictor(model_dir=model, self_ensemble=True)
    se = evaluation.evaluate_model(se_predict, test, protocols="standard", save_images=0, multiple=se_multiple,
                                   progress=False)
    assert card4["scores"][3]["per_image"] == se["per_image"]["standard"]
    assert card4["scores"][3]["psnr"] != card4["scores"][0]["psnr"]  # the flips ran
    assert "+ **self-ensemble**" in open(os.path.join(folder, "tiny-test.md")).read()

    # --text_only measures nothing, so it takes none of what measuring needs
    r = _ship(*common, "--text_only", "--summary=x", f"--test_dirs=held out={test}")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].endswith("leave out --test_dirs")
    # damaged weights: the card is not rewritten over them
    with open(os.path.join(folder, "net.weights.h5"), "r+b") as f:
        f.truncate(1000)
    r = _ship(*common, "--text_only", "--summary=third summary")
    assert r.returncode != 0 and "net.weights.h5" in r.stderr and "sha256" in r.stderr
    assert json.load(open(os.path.join(folder, "tiny-test.json")))["summary"] == "second summary"

    # a damaged card: one line naming it, nothing rewritten
    card_path = os.path.join(folder, "tiny-test.json")
    with open(card_path, "a") as f:
        f.write("}")
    r = _ship(*common, "--text_only", "--summary=third summary")
    assert r.returncode != 0 and r.stderr.strip().splitlines()[-1].startswith(f"error: {card_path}: not valid JSON")

    # a test image that is also a training image (same bytes, another path) stops the command
    shutil.copyfile(os.path.join(train, "rain-1.png"), os.path.join(test, "rain-1.png"))
    r = _ship(*common, f"--model_dir={model}", "--summary=s", "--train_wall_time_s=3", f"--test_dirs=held out={test}",
              "--overwrite")
    assert r.returncode == 2 and "is also a training image of the model" in r.stderr
