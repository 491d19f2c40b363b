"""skipflow.explorers: the precomputed, kernel-free explorers of the HTML book, and their offline assets.

The grids here are smaller than the chapters' (one depth, one seed) so the tests stay fast; the code paths
are the same.
"""

from __future__ import annotations

import base64
import importlib.util
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
import torch
from skipflow import explorers, normfree, runtime
from skipflow.widgets import (
    GRADIENT_FLOW_DEFAULTS,
    ORDERING_DEFAULTS,
    measure_gradient_flow,
    ordering_gradients,
    ordering_training,
)

ROOT = Path(__file__).resolve().parent.parent


def _offline_tool():
    spec = importlib.util.spec_from_file_location("offline_tool", ROOT / "tools" / "offline.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("offline_tool", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def flow() -> explorers.Explorer:
    torch.set_num_threads(1)
    return explorers.gradient_flow_explorer_html(depths=(GRADIENT_FLOW_DEFAULTS["depth"],), n_seeds=1)


@pytest.fixture(scope="module")
def ordering() -> explorers.Explorer:
    return explorers.ordering_explorer_html(
        n_blocks=(ORDERING_DEFAULTS["n_blocks"],), n_seeds=1, train_steps=3
    )


@pytest.fixture(scope="module")
def branch() -> explorers.Explorer:
    return explorers.branch_scale_explorer_html(n_blocks=(4, 8), n_seeds=2, default_blocks=8)


ALL = ("flow", "ordering", "branch")


def _get(request, name: str) -> explorers.Explorer:
    return request.getfixturevalue(name)


@pytest.mark.parametrize("name", ALL)
def test_grid_covers_every_control_value(request, name: str) -> None:
    explorer = _get(request, name)
    data_controls = [c for c in explorer.controls if c.name != "network"]  # "network" only picks series
    for control in data_controls:
        assert {r[control.name] for r in explorer.records} == set(control.values), control.name
    for combo in itertools.product(*(c.values for c in data_controls)):
        setting = dict(zip((c.name for c in data_controls), combo, strict=True))
        assert explorer.record(**setting), f"no data for {setting}"
    for record in explorer.records:
        assert len(record["med"]) == len(record["lo"]) == len(record["hi"]) > 0
        assert all(
            lo <= med <= hi for lo, med, hi in zip(record["lo"], record["med"], record["hi"], strict=True)
        )


@pytest.mark.parametrize("name", ALL)
def test_spec_binds_every_control_and_filters_on_it(request, name: str) -> None:
    explorer = _get(request, name)
    params = {p["name"]: p for p in explorer.spec["params"]}
    assert set(params) == {c.name for c in explorer.controls}
    filter_expr = explorer.spec["transform"][0]["filter"]
    for control in explorer.controls:
        assert params[control.name]["bind"]["options"] == list(control.values)
        assert params[control.name]["value"] == control.default
        assert re.search(rf"\b{control.name}\b", filter_expr), f"the figure ignores {control.name}"


def test_gradient_flow_default_equals_the_live_function(flow: explorers.Explorer) -> None:
    d = GRADIENT_FLOW_DEFAULTS
    norm = "none" if d["norm"] is None else d["norm"]
    setting = {"depth": d["depth"], "activation": d["activation"], "init": d["init"], "norm": norm}
    for residual in (False, True):
        live = measure_gradient_flow(**{**d, "residual": residual}, n_seeds=1)
        (record,) = flow.record(**setting, kind="residual" if residual else "plain")
        assert record["med"] == explorers._summary(live)["med"]
        assert record["med"] == pytest.approx(live[0].tolist(), rel=1e-3)


def test_ordering_default_equals_the_live_function(ordering: explorers.Explorer) -> None:
    live = ordering_gradients(ORDERING_DEFAULTS["ordering"], ORDERING_DEFAULTS["n_blocks"], 0, n_seeds=1)
    (record,) = ordering.record(
        ordering=ORDERING_DEFAULTS["ordering"],
        blocks=ORDERING_DEFAULTS["n_blocks"],
        view="gradient",
        series="(a) original",
    )
    assert record["med"] == explorers._summary(live)["med"]
    # the reference curve drawn next to every ordering is (e) at the same depth
    (reference,) = ordering.record(ordering="original", view="gradient", series="(e) full pre-activation")
    (own,) = ordering.record(ordering="full_preact", view="gradient")
    assert reference["med"] == own["med"]


def test_ordering_training_face_equals_the_live_function(ordering: explorers.Explorer) -> None:
    live = ordering_training(ORDERING_DEFAULTS["ordering"], ORDERING_DEFAULTS["n_blocks"], 3, n_seeds=1)
    (record,) = ordering.record(ordering="original", view="loss", series="(a) original")
    assert record["med"] == explorers._summary(live.losses)["med"]
    assert record["x0"] == 1  # steps are counted from 1, block outputs from 0
    (reference,) = ordering.record(ordering="original", view="loss", series="(e) full pre-activation")
    (own,) = ordering.record(ordering="full_preact", view="loss")
    assert reference["med"] == own["med"]


def test_ordering_training_measures_the_same_runs_as_ordering_gradients() -> None:
    trained = ordering_training("bn_after_add", 6, 4, n_seeds=2)
    assert trained.losses.shape == (2, 4) and torch.isfinite(trained.losses).all()
    torch.testing.assert_close(
        trained.grads, ordering_gradients("bn_after_add", 6, 4, n_seeds=2), rtol=0, atol=0
    )
    with pytest.raises(ValueError, match="train_steps"):
        ordering_training("original", 6, -1)


def test_ordering_reuses_precomputed_runs() -> None:
    from skipflow.orderings import ORDERINGS

    fake = {(o, 50): torch.full((1, 51), 2.0) for o in ORDERINGS}
    losses = {(o, 50): torch.full((1, 4), 3.0) for o in ORDERINGS}
    explorer = explorers.ordering_explorer_html(
        n_blocks=(50,), n_seeds=1, train_steps=4, precomputed=fake, precomputed_losses=losses
    )
    assert explorer.seconds < 5  # nothing was measured
    (record,) = explorer.record(ordering="original", view="gradient", series="(a) original")
    assert record["med"] == [2.0] * 51
    (record,) = explorer.record(ordering="original", view="loss", series="(a) original")
    assert record["med"] == [3.0] * 4
    with pytest.raises(ValueError, match="train_steps"):
        explorers.ordering_explorer_html(
            n_blocks=(50,), n_seeds=1, train_steps=5, precomputed=fake, precomputed_losses=losses
        )


def test_summary_leaves_a_gap_where_a_run_diverged() -> None:
    runs = torch.tensor([[1.0, float("nan"), 2.0]])
    assert explorers._summary(runs)["med"] == [1.0, None, 2.0]
    assert "NaN" not in json.dumps(explorers._summary(runs))


def test_branch_scale_default_equals_the_live_function(branch: explorers.Explorer) -> None:
    live = explorers.branch_scale_variances("1", 8, n_seeds=2)
    (record,) = branch.record(alpha="1", blocks=8, series="measured")
    assert record["med"] == explorers._summary(live)["med"]
    (prediction,) = branch.record(alpha="1/√L", blocks=4, series="prediction (1 + α²)^l")
    assert prediction["med"][-1] == pytest.approx((1 + 1 / 4) ** 4, rel=1e-3)


def test_branch_scale_variances_match_normfree() -> None:
    """The explorer's loop gives chapter 5's numbers (normfree.build + normfree.stream_variances)."""
    from skipflow.widgets.orderings import _digits

    x = _digits().x_train[:256]
    for alpha, fix in explorers.BRANCH_SCALES.items():
        runtime.manual_seed(0)
        reference = normfree.stream_variances(normfree.build(fix, 6), x).double()
        ours = explorers.branch_scale_variances(alpha, 6, n_seeds=1)[0]
        torch.testing.assert_close(ours, reference / reference[0])
    assert explorers.branch_scale_variances("0", 6, n_seeds=1)[0].tolist() == [1.0] * 7  # identity at init


@pytest.mark.parametrize("name", ALL)
def test_html_holds_the_spec_the_fallback_and_the_pinned_loader(request, name: str) -> None:
    explorer = _get(request, name)
    page = explorer.html
    assert explorer._repr_html_() == page
    spec = re.search(
        r'<script type="application/json" class="skipflow-explorer-spec">(.*?)</script>', page, re.S
    )
    assert spec is not None
    assert json.loads(spec.group(1).replace("<\\/", "</")) == json.loads(json.dumps(explorer.spec))
    image = re.search(r'<noscript><img src="data:image/png;base64,([^"]+)" alt="([^"]+)"></noscript>', page)
    assert image is not None, "no static fallback for readers without JavaScript"
    assert base64.b64decode(image.group(1)) == explorer.fallback_png
    assert explorer.fallback_png.startswith(b"\x89PNG")
    for package, version in explorers.VEGA_VERSIONS.items():
        assert f"{explorers.CDN}{package}@{version}/" in page
    assert 'class="skipflow-explorer"' in page and "skipflowVendor" in page


def test_two_explorers_on_one_page_have_distinct_ids(branch: explorers.Explorer) -> None:
    again = explorers.explorer_snippet(branch.spec, branch.fallback_png, alt="x", name="branch_scale")
    ids = [re.search(r'id="([^"]+)"', h).group(1) for h in (branch.html, again)]
    assert ids[0] != ids[1]


def test_versions_agree_with_package_json_and_the_offline_tool() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert {p: pinned[p] for p in explorers.VEGA_VERSIONS} == explorers.VEGA_VERSIONS
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for package, version in explorers.VEGA_VERSIONS.items():
        assert lock[f"node_modules/{package}"]["version"] == version
        assert lock[""]["dependencies"][package] == version
    tool = _offline_tool()
    vendored = {f"{p}/{f.split('/')[-1]}" for p, f in explorers.VEGA_FILES.items()}
    assert vendored == set(tool.EXPLORER_FILES)
    for package in explorers.VEGA_VERSIONS:
        assert package in tool.ASSETS


def test_offline_config_adds_the_explorers_setup(tmp_path: Path) -> None:
    tool = _offline_tool()
    cfg = tool.offline_config(tmp_path)
    assert tool.EXPLORERS_SETUP_ENTRY in cfg["sphinx"]["config"]["html_js_files"]


def test_offline_check_flags_an_explorer_without_vega(tmp_path: Path) -> None:
    tool = _offline_tool()
    (tmp_path / "_vendor").mkdir()
    (tmp_path / tool.MARKER).write_text("{}")
    (tmp_path / "page.html").write_text('<div class="skipflow-explorer" id="x"></div>')
    problems = "\n".join(tool.check_build(tmp_path))
    assert "explorers-setup.js" in problems
    assert "vega/vega.min.js is missing" in problems


@pytest.mark.parametrize(
    ("call", "error", "argument"),
    [
        (lambda: explorers.gradient_flow_explorer_html(depths=(10, 21)), ValueError, "depths"),
        (lambda: explorers.gradient_flow_explorer_html(depths="20"), TypeError, "depths"),
        (lambda: explorers.gradient_flow_explorer_html(depths=(10,)), ValueError, "depths"),
        (lambda: explorers.gradient_flow_explorer_html(depths=(20, 20)), ValueError, "depths"),
        (lambda: explorers.gradient_flow_explorer_html(depths=(20,), n_seeds=0), ValueError, "n_seeds"),
        (lambda: explorers.gradient_flow_explorer_html(depths=(20.0,)), TypeError, "depths"),
        (lambda: explorers.ordering_explorer_html(n_blocks=(10,)), ValueError, "n_blocks"),
        (lambda: explorers.ordering_explorer_html(n_blocks=[]), ValueError, "n_blocks"),
        (
            lambda: explorers.ordering_explorer_html(
                n_blocks=(50,), n_seeds=1, precomputed={("original", 50): torch.ones(2, 51)}
            ),
            ValueError,
            "precomputed",
        ),
        (lambda: explorers.ordering_explorer_html(n_blocks=(50,), precomputed=[1]), TypeError, "precomputed"),
        (
            lambda: explorers.branch_scale_explorer_html(n_blocks=(8,), default_blocks=16),
            ValueError,
            "default",
        ),
        (lambda: explorers.branch_scale_variances(alpha=2), ValueError, "alpha"),
        (lambda: explorers.branch_scale_variances(n_blocks=0), ValueError, "n_blocks"),
        (lambda: explorers.branch_scale_variances(n_blocks=2.5), TypeError, "n_blocks"),
        (lambda: explorers.explorer_snippet({"params": []}, b"GIF89a", alt="x"), TypeError, "fallback_png"),
        (lambda: explorers.explorer_snippet([], b"\x89PNG", alt="x"), TypeError, "spec"),
        (lambda: explorers.Control("a b", "x", (1,), 1), ValueError, "name"),
        (lambda: explorers.Control("a", "x", (1,), 2), ValueError, "default"),
        (lambda: explorers.Control("a", "x", (1,), 1, input="slider"), ValueError, "input"),
        (lambda: measure_gradient_flow(4, batch=0), ValueError, "batch"),
    ],
)
def test_bad_arguments_name_the_argument(call, error: type[Exception], argument: str) -> None:
    with pytest.raises(error, match=argument):
        call()
