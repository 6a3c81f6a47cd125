"""Train and evaluate a list of table rows and write the ablation table beside the published numbers.

    python -m experiments.ablation --preset=demo                 # every Table I row, built-in data, minutes
    python -m experiments.ablation --data_dir=TRAIN --test_dir=TEST --output_dir=runs/table1
    python -m experiments.ablation --table=table2 --data_dir=... --test_dir=...

Each row is its flagfile (experiments/<table>/<row>.flags) plus the shared overrides given here; its
model goes to OUTPUT_DIR/models/<row> (re-running resumes unfinished rows and skips finished ones), its
evaluation (both protocols) to OUTPUT_DIR/eval/<row>, the rainy input's own scores to
OUTPUT_DIR/eval/input. Results: OUTPUT_DIR/table.md, table.csv, figures/fig8_psnr_hist.png,
fig9_ssim_box.png, fig10_grid.png, and each model's training_curves.png.

A finished run is evaluated once: its evaluation is reused while the sha256 of its weights, of the test
pairs, the protocols and --save_images are those recorded in its summary.json (--reevaluate redoes it).
--report_only trains nothing: it writes the table of the runs finished so far (unfinished ones missing),
so a table can be made while trainings go on, in this folder or elsewhere.

With --seeds=0,1,... every row is trained once per seed (seed by seed, so that an interrupted run has
whole seeds of as many rows as possible) into OUTPUT_DIR/models/<row>/seed<k> and evaluated into
OUTPUT_DIR/eval/<row>/seed<k>; OUTPUT_DIR/runs.csv holds one line per finished run of the folder (row,
seed, both protocols' scores, training time: the wall time of the invocation that trained it, the part
after a resume only; runs of earlier invocations that this one does not redo keep their lines) and the table the mean and [min, max] over the seeds of each row,
with the number of seeds and any missing seed named (a row is never averaged over fewer seeds silently).
The figures use each row's first seed.

--preset=demo synthesises light rain (menet_tf.synthesis) on the photos bundled with scikit-image:
six photos for training, three others for testing, so it needs no download, and trains every row
briefly (96x96 crops, batch 8, 6 epochs): a smoke-scale ablation that finishes in minutes on 2 cores.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time

from absl import app, flags

from experiments.cliutil import usage_error
from menet_tf.atomic import atomic_write

flags.DEFINE_enum("preset", "none", ["none", "demo"], "demo: built-in synthetic data and a short schedule.")
flags.DEFINE_enum("table", "table1", ["table1", "table2", "table4", "variants"], "Which table's flagfiles to run.")
flags.DEFINE_list("rows", None, "Rows (flagfile names) to run; default: all rows of --table in paper order. A row "
                  "of another table as TABLE:ROW (e.g. table2:menet_lb_deep, variants:menet_lb_stable); 'table1' "
                  "alone = all its rows. Row names must be unique: they name the model folders.")
flags.DEFINE_string("data_dir", None, "Training pairs (not needed with --preset=demo).")
flags.DEFINE_string("test_dir", None, "Test pairs (not needed with --preset=demo).")
flags.DEFINE_string("output_dir", None, "Where models, evaluations, the table and figures go.")
flags.DEFINE_integer("epochs", None, "Override the epochs of every row.")
flags.DEFINE_integer("lr_decay_epochs", None, "Override the lr decay period of every row.")
flags.DEFINE_integer("steps_per_epoch", None, "Cap steps per epoch (short runs).")
flags.DEFINE_integer("batch_size", None, "Override the batch size.")
flags.DEFINE_integer("crop_size", None, "Override the training crop size.")
flags.DEFINE_integer("seed", None, "Override the seed.")
flags.DEFINE_list("seeds", None, "Train every row once per seed (e.g. 0,1,2): models/<row>/seed<k>, eval/<row>/seed<k>; "
                  "runs.csv has one line per run and the table the mean and [min, max] over seeds.")
flags.DEFINE_bool("mixed_precision", None, "Train with mixed precision.")
flags.DEFINE_bool("track_grad_norms", None, "Log every task's gradient norm on layer5 in every row (GB rows always "
                  "do); it does not change training, so rows trained without it are still reused.")
flags.DEFINE_string("vgg19_weights", None, "VGG19 weights file for the Table IV VGG row.")
flags.DEFINE_enum("protocol", "both", ["paper", "standard", "both"], "Evaluation protocol(s).")
flags.DEFINE_integer("save_images", 3, "De-rained test images kept per row (for the Fig. 10 grid).")
flags.DEFINE_bool("report_only", False, "Train nothing: tabulate the finished runs of --output_dir (evaluating any "
                  "not yet evaluated) and report the rest as missing, e.g. while trainings go on.")
flags.DEFINE_bool("reevaluate", False, "Evaluate every finished run again, even one whose saved evaluation matches "
                  "its weights, test pairs, protocols and --save_images.")
FLAGS = flags.FLAGS

DEMO = {"crop_size": 96, "batch_size": 8, "epochs": 6, "lr_decay_epochs": 4, "output_dir": "demo_out"}
DEMO_TEST_PHOTOS = ("rocket", "motorcycle_left", "motorcycle_right")  # the motorcycle stereo pair stays together
DEMO_VARIANTS = 3


def prepare_demo_data(root: str) -> tuple[str, str]:
    """Light rain on the bundled photos: train = six photos x 3 renders, test = three other photos."""
    from menet_tf import atomic, synthesis

    train_dir, test_dir = os.path.join(root, "train"), os.path.join(root, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        return train_dir, test_dir
    photos = synthesis.builtin_clean_images()
    is_test = lambda p: os.path.splitext(os.path.basename(p))[0] in DEMO_TEST_PHOTOS  # noqa: E731
    atomic.remove_partials(root)  # what a killed earlier run left
    for name, chosen, variants, seed in (("train", [p for p in photos if not is_test(p)], DEMO_VARIANTS, 0),
                                         ("test", [p for p in photos if is_test(p)], 1, 1)):
        clean = os.path.join(root, f"clean_{name}")
        os.makedirs(clean, exist_ok=True)
        for p in chosen:
            shutil.copy(p, clean)
        with atomic.atomic_path(os.path.join(root, name)) as tmp:  # a killed run leaves no half folder
            synthesis.synthesize_dataset(tmp, "light", clean_dir=clean, seed=seed, num_variants=variants)
    return train_dir, test_dir


def row_order(table: str) -> list[str]:
    from experiments.config import list_rows
    from experiments.published import TABLE1_ORDER

    rows = list_rows(table)
    if table == "table1":
        order = [r for r, _ in TABLE1_ORDER]
        return [r for r in order if r in rows] + [r for r in rows if r not in order]
    return rows


def parse_rows(specs, default_table: str) -> list[tuple[str, str]]:
    """(table, row) per --rows entry: ``row`` (of ``default_table``), ``table:row``, or a bare table name
    for all its rows in paper order. ValueError naming an unknown table or row, or a row named twice."""
    from experiments.config import EXPERIMENTS_DIR

    tables = sorted(d for d in os.listdir(EXPERIMENTS_DIR) if os.path.isdir(os.path.join(EXPERIMENTS_DIR, d))
                    and any(f.endswith(".flags") for f in os.listdir(os.path.join(EXPERIMENTS_DIR, d))))
    out = []
    for spec in specs or [default_table]:
        if ":" in spec:
            table, row = spec.split(":", 1)
        elif spec in tables:
            table, row = spec, ""
        else:
            table, row = default_table, spec
        if table not in tables:
            raise ValueError(f"--rows: {spec}: no table {table!r} (have: {', '.join(tables)})")
        available = row_order(table)
        chosen = available if not row else [row]
        unknown = [r for r in chosen if r not in available]
        if unknown:
            raise ValueError(f"--rows: no flagfile for {unknown} in {table} (have: {', '.join(available)})")
        out += [(table, r) for r in chosen]
    names = [r for _, r in out]
    twice = sorted({r for r in names if names.count(r) > 1})
    if twice:
        raise ValueError(f"--rows: {', '.join(twice)} named twice (row names name the model folders)")
    return out


def row_name(table: str, row: str) -> str:
    """A row's display name: Table I's from the paper, else its flagfile's first comment after the colon."""
    from experiments.config import row_flagfile
    from experiments.published import TABLE1_ORDER

    names = dict(TABLE1_ORDER)
    if table == "table1" and row in names:
        return names[row]
    with open(row_flagfile(row, table)) as f:
        first = f.readline().strip()
    if first.startswith("#"):
        text = first.lstrip("# ").split(":", 1)[-1].strip()
        return text.split(" (")[0] if len(text) > 60 else text
    return row


def overrides() -> dict:
    out = {}
    for name in ("epochs", "lr_decay_epochs", "steps_per_epoch", "batch_size", "crop_size", "seed",
                 "mixed_precision", "vgg19_weights", "track_grad_norms"):
        value = getattr(FLAGS, name)
        if value is not None:
            out[name] = value
    if FLAGS.preset == "demo":
        for k, v in DEMO.items():
            if k != "output_dir" and getattr(FLAGS, k, None) is None:
                out[k] = v
    return out


def is_trained(model_dir: str, epochs: int) -> bool:
    from experiments.training import HISTORY_FILE, read_history

    rows = read_history(os.path.join(model_dir, HISTORY_FILE))
    return bool(rows) and int(rows[-1]["epoch"]) + 1 >= epochs


def run_dirs(output_dir: str, row: str, seed: int | None) -> tuple[str, str]:
    """(model_dir, eval_dir) of a row, or of one seed of it."""
    sub = [row] if seed is None else [row, f"seed{seed}"]
    return os.path.join(output_dir, "models", *sub), os.path.join(output_dir, "eval", *sub)


def run_config(table: str, row: str, data_dir: str, output_dir: str, settings: dict, seed: int | None = None):
    from experiments.config import load_flagfile, row_flagfile

    extra = {} if seed is None else {"seed": seed}
    return dataclasses.replace(load_flagfile(row_flagfile(row, table)), data_dir=data_dir,
                               model_dir=run_dirs(output_dir, row, seed)[0], **{**settings, **extra})


EVAL_KEY = "ablation_evaluation_key"


_TEST_DIGESTS: dict[str, str] = {}


def test_set_digest(test_dir: str) -> str:
    """sha256 over the relative path and the sha256 of every file under ``test_dir`` (once per invocation)."""
    import hashlib

    from menet_tf.pretrained import sha256

    root = os.path.realpath(test_dir)
    if root not in _TEST_DIGESTS:
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                h.update(f"{os.path.relpath(path, root)}\0{sha256(path)}\n".encode())
        _TEST_DIGESTS[root] = h.hexdigest()
    return _TEST_DIGESTS[root]


def evaluation_key(model_dir: str | None, test_dir: str) -> dict:
    """What an evaluation's numbers and files depend on, besides the code: the weights (None: the rainy
    input), the test pairs, the protocols and the number of saved images."""
    from experiments.evaluation import normalize_protocols
    from menet_tf.model import WEIGHTS_FILE
    from menet_tf.pretrained import sha256

    weights = None if model_dir is None else sha256(os.path.join(model_dir, WEIGHTS_FILE))
    return {"weights_sha256": weights, "test_sha256": test_set_digest(test_dir),
            "protocols": sorted(normalize_protocols(FLAGS.protocol)), "save_images": FLAGS.save_images}


def reusable_evaluation(eval_dir: str, key: dict) -> dict | None:
    """``eval_dir``'s summary when it was made with ``key`` (and --reevaluate is off), else None."""
    from experiments.evaluation import SUMMARY_FILE

    path = os.path.join(eval_dir, SUMMARY_FILE)
    if FLAGS.reevaluate or not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None  # unreadable: evaluate again (written whole, so only a hand-edited one)
    return summary if summary.get(EVAL_KEY) == key else None


def evaluate_run(model_dir: str | None, test_dir: str, eval_dir: str, name: str, fresh: bool = False) -> dict:
    """The evaluation of a model folder (None: the rainy input) into ``eval_dir``: the saved one when its
    key matches and the weights were not (re)trained in this invocation (``fresh``), else a new one."""
    from experiments import evaluation

    key = evaluation_key(model_dir, test_dir)
    if not fresh:
        summary = reusable_evaluation(eval_dir, key)
        if summary is not None:
            print(f"{name}: evaluation reused ({eval_dir}; same weights and test pairs)", flush=True)
            return summary
    if model_dir is None:
        predict, multiple = None, 1
    else:
        predict, multiple, _ = evaluation.load_predictor(model_dir=model_dir)
    return evaluation.evaluate_model(predict, test_dir, protocols=FLAGS.protocol, output_dir=eval_dir,
                                     name=name, multiple=multiple, save_images=FLAGS.save_images,
                                     extra={EVAL_KEY: key})


def run_row(table: str, row: str, data_dir: str, test_dir: str, output_dir: str, settings: dict,
            seed: int | None = None) -> dict | None:
    """Train (unless finished) and evaluate one row, or one seed of it: its evaluation summary with
    ``train_seconds`` (None when trained by an earlier invocation). With --report_only an unfinished run is
    not trained: None."""
    from experiments.training import HISTORY_FILE, read_history, train

    config = run_config(table, row, data_dir, output_dir, settings, seed)
    train_s = None  # None: trained before this invocation (its runs.csv line keeps the time measured then)
    if not is_trained(config.model_dir, config.epochs):
        if FLAGS.report_only:
            done = len(read_history(os.path.join(config.model_dir, HISTORY_FILE)))
            print(f"{row}{'' if seed is None else f' seed {seed}'}: not finished ({done} of {config.epochs} "
                  f"epochs in {config.model_dir}); reported as missing", flush=True)
            return None
        print(f"\n=== {row}: training ({config.epochs} epochs) -> {config.model_dir}", flush=True)
        t0 = time.time()
        train(config)
        train_s = time.time() - t0
    summary = evaluate_run(config.model_dir, test_dir, run_dirs(output_dir, row, seed)[1], row,
                           fresh=train_s is not None)
    return {**summary, "train_seconds": train_s}


SCORES = ("paper_psnr", "paper_ssim", "standard_psnr", "standard_ssim")
RUNS_CSV = "runs.csv"


def run_scores(summary: dict) -> dict:
    """{paper_psnr, paper_ssim, standard_psnr, standard_ssim} of an evaluation summary (None if absent)."""
    out = {}
    for key in SCORES:
        protocol, metric = key.split("_")
        v = summary.get("protocols", {}).get(protocol, {}).get(metric)
        out[key] = None if v is None else float(v)
    return out


def published_fields(row: str) -> dict:
    """The published (SSIM, PSNR) of a row on Rain100H and Rain100L as table columns (None if unpublished)."""
    from experiments.published import PUBLISHED

    pub = PUBLISHED.get(row, {})
    return {f"published_{name}_{metric}": pub.get(name, (None, None))[k]
            for name in ("Rain100H", "Rain100L") for k, metric in enumerate(("ssim", "psnr"))}


def aggregate_seeds(runs: list[dict], rows: list[str], seeds: list[int]) -> list[dict]:
    """Per row, over its runs (dicts with "row", "seed" and the SCORES): for each score the mean, min and
    max over the seeds present, ``n`` of ``n_expected`` seeds and ``missing`` (the asked ``seeds`` without a
    run, so that a mean over fewer seeds is never mistaken for the full one); None where no run has a
    score. A row's runs of seeds beyond ``seeds`` (say seed 2 of two rows, run by an earlier invocation)
    count too: expected are the asked seeds and those."""
    out = []
    for row in rows:
        mine = {int(r["seed"]): r for r in runs if r["row"] == row}
        agg = {"row": row, "n": len(mine), "n_expected": len(set(seeds) | set(mine)),
               "seeds": sorted(mine), "missing": [s for s in seeds if s not in mine]}
        for key in SCORES:
            values = [float(r[key]) for r in mine.values() if r.get(key) not in (None, "")]
            agg[f"{key}_mean"] = sum(values) / len(values) if values else None
            agg[f"{key}_min"] = min(values) if values else None
            agg[f"{key}_max"] = max(values) if values else None
        out.append(agg)
    return out


def read_runs_csv(output_dir: str) -> list[dict]:
    path = os.path.join(output_dir, RUNS_CSV)
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def merge_runs(previous: list[dict], current: list[dict], rows: list[str], seeds: list[int]) -> list[dict]:
    """The runs of this invocation, plus the lines of the folder's earlier runs.csv for (row, seed) pairs
    not re-run (yet) by it, so that neither an interrupted invocation nor one with another plan (say,
    seed 2 of two rows only) drops results: runs.csv keeps one line per run of the folder. Sorted by seed,
    then the rows of this plan in order, then the others by name."""
    done = {(r["row"], int(r["seed"])) for r in current}
    kept = [r for r in previous if (r["row"], int(r["seed"])) not in done]
    order = {row: i for i, row in enumerate(rows)}
    return sorted(current + kept, key=lambda r: (int(r["seed"]), order.get(r["row"], len(rows)), r["row"]))


def write_runs_csv(output_dir: str, runs: list[dict]) -> str:
    path = os.path.join(output_dir, RUNS_CSV)
    header = ["row", "name", "seed", *SCORES, "train_seconds", "model_dir"]
    with atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(runs)
    return path


def write_seed_table(table: str, runs: list[dict], rows: list[str], seeds: list[int], input_summary: dict,
                     output_dir: str, names: dict | None = None) -> tuple[str, str]:
    """table.md / table.csv over seeds: mean [min, max] per score, seeds present, missing seeds."""
    from experiments.published import TABLE1_ORDER

    names = {**dict(TABLE1_ORDER), **(names or {})}
    inp = run_scores(input_summary)
    aggs = aggregate_seeds(runs, rows, seeds)
    header = ["row", "name", "n", "n_expected", "missing"] + [f"{k}_{s}" for k in SCORES for s in ("mean", "min", "max")] \
        + ["gain_db_standard_mean", "published_Rain100H_ssim", "published_Rain100H_psnr",
           "published_Rain100L_ssim", "published_Rain100L_psnr"]
    records = []
    for a in aggs:
        std = a["standard_psnr_mean"]
        records.append({**{k: a[k] for k in header if k in a}, "name": names.get(a["row"], a["row"]),
                        "missing": " ".join(str(s) for s in a["missing"]),
                        "gain_db_standard_mean": None if std is None or inp["standard_psnr"] is None
                        else std - inp["standard_psnr"],
                        **published_fields(a["row"])})
    csv_path = os.path.join(output_dir, "table.csv")
    with atomic_write(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(records)

    def cell(r, key, digits):
        mean, lo, hi = r[f"{key}_mean"], r[f"{key}_min"], r[f"{key}_max"]
        if mean is None:
            return "-"
        return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"

    def pub(r, name):
        return f"{r[f'published_{name}_ssim']:.4f} / {r[f'published_{name}_psnr']:.2f}" \
            if r[f"published_{name}_psnr"] is not None else ""

    lines = [
        f"# {table} over seeds {', '.join(map(str, seeds))} (and any other seed a row has in runs.csv): measured "
        f"on {input_summary.get('dataset', '')} beside the published numbers",
        "",
        "Each cell: mean [min, max] over the row's seeds. Paper protocol = 224x224 five-crops with flips, RGB, "
        "tf.image; standard = full image, uint8, MATLAB Y. Published: paper protocol, Rain100H (Table I, "
        "released log) and Rain100L (Tables II/IV).",
        "",
        f"Input (rainy): paper {inp['paper_psnr'] or 0:.2f} / {inp['paper_ssim'] or 0:.4f}, "
        f"standard {inp['standard_psnr'] or 0:.2f} / {inp['standard_ssim'] or 0:.4f}.",
        "",
        "| row | seeds | paper PSNR | paper SSIM | standard PSNR | standard SSIM | gain (std, dB) "
        "| published Rain100H SSIM / PSNR | published Rain100L SSIM / PSNR |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        seeds_cell = f"{r['n']}/{r['n_expected']}" + (f" (missing {r['missing']})" if r["missing"] else "")
        gain = "" if r["gain_db_standard_mean"] is None else f"{r['gain_db_standard_mean']:+.2f}"
        lines.append(f"| {r['name']} | {seeds_cell} | {cell(r, 'paper_psnr', 2)} | {cell(r, 'paper_ssim', 4)} "
                     f"| {cell(r, 'standard_psnr', 2)} | {cell(r, 'standard_ssim', 4)} | {gain} "
                     f"| {pub(r, 'Rain100H')} | {pub(r, 'Rain100L')} |")
    md_path = os.path.join(output_dir, "table.md")
    with atomic_write(md_path) as f:
        f.write("\n".join(lines) + "\n")
    return md_path, csv_path


def write_table(table: str, summaries: dict, input_summary: dict, output_dir: str,
                names: dict | None = None) -> tuple[str, str]:
    """table.md and table.csv: our paper/standard PSNR/SSIM, gain over the input, published numbers."""
    from experiments.published import TABLE1_ORDER

    names = {**dict(TABLE1_ORDER), **(names or {})}
    dataset = input_summary.get("dataset", "")

    def proto(s, p, key):
        v = s.get("protocols", {}).get(p, {}).get(key)
        return None if v is None else float(v)

    input_std = proto(input_summary, "standard", "psnr")
    header = ["row", "name", "paper_psnr", "paper_ssim", "standard_psnr", "standard_ssim", "gain_db_standard",
              "published_Rain100H_ssim", "published_Rain100H_psnr", "published_Rain100L_ssim",
              "published_Rain100L_psnr", "train_seconds"]
    records = []
    for row, s in [("input", input_summary), *summaries.items()]:
        std = proto(s, "standard", "psnr")
        records.append({
            "row": row, "name": "Input (rainy)" if row == "input" else names.get(row, row),
            "paper_psnr": proto(s, "paper", "psnr"), "paper_ssim": proto(s, "paper", "ssim"),
            "standard_psnr": std, "standard_ssim": proto(s, "standard", "ssim"),
            "gain_db_standard": None if (std is None or input_std is None) else std - input_std,
            **published_fields(row),
            "train_seconds": s.get("train_seconds"),
        })
    csv_path = os.path.join(output_dir, "table.csv")
    with atomic_write(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(records)

    def fmt(v, digits):
        return "" if v is None else f"{v:.{digits}f}"

    lines = [
        f"# {table}: measured on {dataset} (ours) beside the published numbers",
        "",
        "Ours: paper protocol = 224x224 five-crops with flips, RGB, tf.image; standard = full image, uint8, "
        "MATLAB Y. Published: paper protocol, Rain100H (Table I, released log) and Rain100L (Tables II/IV).",
        "",
        "| row | ours paper PSNR / SSIM | ours standard PSNR / SSIM | gain over input (std, dB) "
        "| published Rain100H SSIM / PSNR | published Rain100L SSIM / PSNR |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        pub_h = f"{fmt(r['published_Rain100H_ssim'], 4)} / {fmt(r['published_Rain100H_psnr'], 2)}" \
            if r["published_Rain100H_psnr"] is not None else ""
        pub_l = f"{fmt(r['published_Rain100L_ssim'], 4)} / {fmt(r['published_Rain100L_psnr'], 2)}" \
            if r["published_Rain100L_psnr"] is not None else ""
        lines.append(
            f"| {r['name']} | {fmt(r['paper_psnr'], 2)} / {fmt(r['paper_ssim'], 4)} "
            f"| {fmt(r['standard_psnr'], 2)} / {fmt(r['standard_ssim'], 4)} | {fmt(r['gain_db_standard'], 2)} "
            f"| {pub_h} | {pub_l} |"
        )
    md_path = os.path.join(output_dir, "table.md")
    with atomic_write(md_path) as f:
        f.write("\n".join(lines) + "\n")
    return md_path, csv_path


def main(argv):
    if len(argv) > 1:
        usage_error("experiments.ablation", f"unexpected arguments: {' '.join(argv[1:])}")
    from experiments.cliutil import check_writable

    output_dir = FLAGS.output_dir or (DEMO["output_dir"] if FLAGS.preset == "demo" else None)
    if not output_dir:
        usage_error("experiments.ablation", "--output_dir is required (or use --preset=demo)")
    try:
        check_writable(output_dir, "--output_dir")
    except ValueError as e:
        usage_error("experiments.ablation", str(e))
    try:
        table_rows = parse_rows(FLAGS.rows, FLAGS.table)
    except ValueError as e:
        usage_error("experiments.ablation", str(e))
    rows = [r for _, r in table_rows]
    table_of = dict((r, t) for t, r in table_rows)
    if FLAGS.preset == "demo":
        data_dir, test_dir = prepare_demo_data(os.path.join(output_dir, "data"))
    else:
        data_dir, test_dir = FLAGS.data_dir, FLAGS.test_dir
        for flag, path in (("--data_dir", data_dir), ("--test_dir", test_dir)):
            if not path or not os.path.isdir(path):
                usage_error("experiments.ablation", f"{flag}: {path!r} is not a directory (or use --preset=demo)")

    from experiments import evaluation, figures
    from experiments.training import check_reusable

    settings = overrides()
    try:
        seeds = [int(s) for s in FLAGS.seeds] if FLAGS.seeds else None
    except ValueError:
        usage_error("experiments.ablation", f"--seeds: {','.join(FLAGS.seeds)} is not a list of integers")
    if seeds is not None and len(set(seeds)) != len(seeds):
        usage_error("experiments.ablation", f"--seeds: a seed is named twice in {seeds}")
    for row in rows:  # a reused row folder trained with other settings stops the run before any work
        for seed in seeds or [None]:
            config = run_config(table_of[row], row, data_dir, output_dir, settings, seed)
            try:
                check_reusable(config, config.model_dir)
            except ValueError as e:
                usage_error("experiments.ablation", str(e))
    t0 = time.time()
    print(f"ablation {FLAGS.table}: rows {', '.join(rows)}; train {data_dir}, test {test_dir}; "
          f"overrides {json.dumps(settings)}", flush=True)
    input_summary = evaluate_run(None, test_dir, os.path.join(output_dir, "eval", "input"), evaluation.IDENTITY_NAME)
    names = {r: row_name(t, r) for t, r in table_rows}
    if seeds is not None:
        runs = []
        for seed in seeds:  # seed by seed: an interrupted run leaves whole seeds of as many rows as possible
            for row in rows:
                summary = run_row(table_of[row], row, data_dir, test_dir, output_dir, settings, seed)
                if summary is None:
                    continue
                # read again before each write: lines that another invocation on this folder (say a
                # --report_only one, or one with another plan) wrote meanwhile are kept
                previous = read_runs_csv(output_dir)
                earlier = next((r for r in previous if r["row"] == row and int(r["seed"]) == seed), {})
                runs.append({"row": row, "name": names.get(row, row), "seed": seed, **run_scores(summary),
                             "train_seconds": summary["train_seconds"] if summary.get("train_seconds") is not None
                             else earlier.get("train_seconds"),
                             "model_dir": os.path.relpath(run_dirs(output_dir, row, seed)[0], output_dir)})
                merged = merge_runs(previous, runs, rows, seeds)
                write_runs_csv(output_dir, merged)  # after every run: a crash keeps the runs finished so far
                write_seed_table(FLAGS.table, merged, rows, seeds, input_summary, output_dir, names)
        # the table once more (also when --report_only found nothing finished: every row then named missing)
        md_path, csv_path = write_seed_table(FLAGS.table, merge_runs(read_runs_csv(output_dir), runs, rows, seeds),
                                             rows, seeds, input_summary, output_dir, names)
        # the figures: each row's first seed that has a run
        first = {r["row"]: int(r["seed"]) for r in reversed(runs)}
        eval_dirs = [os.path.join(output_dir, "eval", "input")] + [run_dirs(output_dir, r, first[r])[1]
                                                                    for r in rows if r in first]
    else:
        summaries = {}
        for row in rows:
            summary = run_row(table_of[row], row, data_dir, test_dir, output_dir, settings)
            if summary is not None:
                summaries[row] = summary
                write_table(FLAGS.table, summaries, input_summary, output_dir, names)  # a partial table survives a crash
        md_path, csv_path = write_table(FLAGS.table, summaries, input_summary, output_dir, names)
        eval_dirs = [os.path.join(output_dir, "eval", d) for d in ["input", *summaries]]
    pngs = figures.compare(eval_dirs, os.path.join(output_dir, "figures"))
    with open(md_path) as f:
        print("\n" + f.read(), flush=True)
    print(f"table: {md_path}, {csv_path}\nfigures: {', '.join(pngs)}\n"
          f"total {time.time() - t0:.0f} s", flush=True)


def console():
    """The ``menet-ablation`` console script (setup.cfg entry point): the same as ``python -m experiments.ablation``."""
    app.run(main)


if __name__ == "__main__":
    console()
