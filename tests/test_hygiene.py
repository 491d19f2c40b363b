"""Repository hygiene: notebooks, configuration and layout follow the rules in DESIGN.md.

Each rule is a function in tests/notebook_rules.py; the tests run it on the real repository and also on a
deliberately broken copy, to show that it can fail.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from notebook_rules import (
    ROOT,
    SETUP_CELL,
    config_repo_url,
    notebook_problems,
    text_file_problems,
    toc_files,
)

NOTEBOOKS = sorted((ROOT / "chapters").glob("*.ipynb"))
TOC = toc_files()
URL = config_repo_url()


def test_there_are_notebooks_and_each_toc_entry_exists():
    assert NOTEBOOKS, "chapters/ holds no notebooks"
    for entry in TOC:
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml lists {entry!r}, which does not exist"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_rules(path):
    assert notebook_problems(path, TOC, URL) == []


@pytest.mark.parametrize("name", ["_config.yml", "_toc.yml", "Makefile", "pyproject.toml", "README.md"])
def test_config_has_no_absolute_paths(name):
    path = ROOT / name
    if not path.exists():
        pytest.skip(f"{name} is not there yet")
    assert text_file_problems(path) == []


def test_setup_cell_url_matches_config():
    assert f'REPO_URL = "{URL}"' in SETUP_CELL


def test_code_folder_is_not_a_package():
    # `code` would shadow the standard-library module that pdb and IPython import
    assert not (ROOT / "code" / "__init__.py").exists()
    assert (ROOT / "code" / "skipflow" / "__init__.py").exists()


def test_exercises_never_set_hide_solutions():
    config = (ROOT / "_config.yml").read_text()
    assert "hide_solutions" not in config  # crashes with sphinx-exercise's gated directives


# --- the rules can fail --------------------------------------------------------------------------


@pytest.fixture
def good_notebook(tmp_path: Path) -> tuple[Path, dict]:
    nb = json.loads((ROOT / "chapters" / "00_how_to_use.ipynb").read_text())
    folder = tmp_path / "chapters"
    folder.mkdir()
    return folder / "00_how_to_use.ipynb", nb


def problems_of(path: Path, nb: dict, toc=TOC, url=URL) -> list[str]:
    path.write_text(json.dumps(nb))
    return notebook_problems(path, toc, url)


def test_rules_pass_a_clean_copy(good_notebook):
    path, nb = good_notebook
    assert problems_of(path, nb) == []


def test_rules_catch_stored_outputs(good_notebook):
    path, nb = good_notebook
    bad = copy.deepcopy(nb)
    code = next(c for c in bad["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi"}]
    assert any("stored outputs" in p for p in problems_of(path, bad))


def test_rules_catch_a_wrong_kernel(good_notebook):
    path, nb = good_notebook
    bad = copy.deepcopy(nb)
    bad["metadata"]["kernelspec"]["name"] = "my-env"
    assert any("kernelspec" in p for p in problems_of(path, bad))


def test_rules_catch_an_edited_setup_cell(good_notebook):
    path, nb = good_notebook
    bad = copy.deepcopy(nb)
    bad["cells"][0]["source"] = SETUP_CELL.replace("import skipflow", "import skipflow  # edited")
    assert any("setup cell" in p for p in problems_of(path, bad))


def test_rules_catch_an_untagged_setup_cell(good_notebook):
    path, nb = good_notebook
    bad = copy.deepcopy(nb)
    bad["cells"][0]["metadata"]["tags"] = []
    assert any("lacks the tag" in p for p in problems_of(path, bad))


def test_rules_catch_a_url_mismatch(good_notebook):
    path, nb = good_notebook
    assert any("REPO_URL" in p for p in problems_of(path, nb, url="https://example.org/other"))


def test_rules_catch_a_notebook_missing_from_the_toc(good_notebook):
    path, nb = good_notebook
    assert any("_toc.yml" in p for p in problems_of(path, nb, toc=["intro"]))


def test_rules_catch_absolute_paths(good_notebook, tmp_path):
    path, nb = good_notebook
    bad = copy.deepcopy(nb)
    bad["cells"][1]["source"] = "data = open('/home/alice/digits.csv')"
    assert any("absolute path" in p for p in problems_of(path, bad))
    config = tmp_path / "conf.yml"
    config.write_text("path: /work/main/book\nurl: https://github.com/a/b\n")
    assert len(text_file_problems(config)) == 1  # the URL is not a path


def _code_cell(text: str, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": text, "outputs": []}


def _with_cell(nb: dict, cell: dict, at: int = 2) -> dict:
    broken = copy.deepcopy(nb)
    broken["cells"].insert(at, cell)
    return broken


def test_rules_catch_a_bare_assert(good_notebook):
    path, nb = good_notebook
    broken = _with_cell(
        nb, _code_cell("x = 1\nassert x > 0  # a claim the ledger never sees", ("remove-cell",))
    )
    assert any("bare assert" in p for p in problems_of(path, broken))


@pytest.mark.parametrize(
    "seeding", ["torch.manual_seed(0)", "g = torch.Generator().manual_seed(3)", "np.random.seed(1)"]
)
def test_rules_catch_seeding_around_the_offset(good_notebook, seeding):
    path, nb = good_notebook
    assert any("seeds directly" in p for p in problems_of(path, _with_cell(nb, _code_cell(seeding))))


def test_rules_catch_a_missing_or_unfolded_ledger(good_notebook):
    path, nb = good_notebook
    without = copy.deepcopy(nb)
    without["cells"] = [c for c in nb["cells"] if "show_ledger" not in "".join(c["source"])]
    assert any("exactly one cell" in p for p in problems_of(path, without))
    shown = copy.deepcopy(nb)
    for cell in shown["cells"]:
        if "show_ledger" in "".join(cell["source"]):
            cell["metadata"]["tags"] = []
    assert any("remove-input" in p for p in problems_of(path, shown))
    late = _with_cell(nb, _code_cell("skipflow.claims.check_between('x', 1, 0, why='w')"), len(nb["cells"]))
    assert any("after the ledger" in p for p in problems_of(path, late))


def duplicate_reference_links(bib: str) -> list[str]:
    """Entries whose `url` is the arXiv page of their own `eprint`, or the doi.org page of their own `doi`:
    their reference shows one link twice."""
    found = []
    for entry in re.split(r"(?m)^@", bib):
        key = entry.split("{", 1)[-1].split(",", 1)[0].strip()
        url = re.search(r"url\s*=\s*\{([^}]*)\}", entry)
        if not url:
            continue
        for field, page in (("eprint", "arxiv.org/abs/"), ("doi", "doi.org/")):
            value = re.search(field + r"\s*=\s*\{([^}]*)\}", entry)
            if value and re.fullmatch(r"https?://(dx\.)?" + re.escape(page + value.group(1)), url.group(1)):
                found.append(key)
    return found


def test_each_reference_prints_one_link():
    assert duplicate_reference_links((ROOT / "references.bib").read_text(encoding="utf-8")) == []
    twice = "@article{k1,\n  eprint = {1512.03385},\n  url = {https://arxiv.org/abs/1512.03385}\n}\n"
    assert duplicate_reference_links(twice) == ["k1"]
    doi_twice = "@article{k2,\n  doi = {10.1109/72.279181},\n  url = {https://doi.org/10.1109/72.279181}\n}\n"
    assert duplicate_reference_links(doi_twice) == ["k2"]
    other_page = "@article{k3,\n  doi = {10.1/x},\n  url = {https://proceedings.mlr.press/v9/x.html}\n}\n"
    assert duplicate_reference_links(other_page) == []


def test_rules_catch_a_long_reader_facing_cell(good_notebook):
    path, nb = good_notebook
    long_cell = "\n".join(f"x{n} = {n}" for n in range(21))
    assert any("21 lines" in p for p in problems_of(path, _with_cell(nb, _code_cell(long_cell))))
    assert problems_of(path, _with_cell(nb, _code_cell(long_cell, ("remove-input",)))) == []
    assert problems_of(path, _with_cell(nb, _code_cell("\n".join(long_cell.splitlines()[:20])))) == []


def test_rules_catch_wide_code_and_glue_calls_shown_to_the_reader(good_notebook):
    path, nb = good_notebook
    wide = "x = " + "1 + " * 21 + "1"  # 89 characters
    assert len(wide) == 89
    assert any("line(s) [1] run past" in p for p in problems_of(path, _with_cell(nb, _code_cell(wide))))
    assert problems_of(path, _with_cell(nb, _code_cell(wide[:-4] + "1"))) == []
    assert problems_of(path, _with_cell(nb, _code_cell(wide, ("hide-input",)))) == []
    glued = 'y = 2\nprint(y)\nskipflow.glue("ch9_y", y);'
    assert any("glue calls" in p for p in problems_of(path, _with_cell(nb, _code_cell(glued))))
    assert problems_of(path, _with_cell(nb, _code_cell(glued, ("remove-cell",)))) == []
    figure = 'skipflow.glue_figure("fig_x", fig)'
    assert not any("glue calls" in p for p in problems_of(path, _with_cell(nb, _code_cell(figure))))


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ('skipflow.glue("ch9_x", 1.5)', True),
        ('y = 2\nskipflow.glue("ch9_x", y)  # the ratio', True),
        ('skipflow.glue("ch9_x", 1.5);', False),
        ('skipflow.glue("ch9_x", 1.5)  ;  # shown in the text only', False),
        ('v = skipflow.glue("ch9_x", 1.5)', False),
        ('skipflow.glue_figure("fig_x", fig)', False),
    ],
)
def test_rules_catch_a_glued_value_shown_bare(good_notebook, text, flagged):
    path, nb = good_notebook
    found = any("glue call without" in p for p in problems_of(path, _with_cell(nb, _code_cell(text))))
    assert found == flagged
    hidden = _with_cell(nb, _code_cell(text, ("remove-output",)))
    assert not any("glue call without" in p for p in problems_of(path, hidden))


def glossary_terms_never_linked(glossary: str, chapters: str) -> list[str]:
    """Glossary entries that no chapter links with {term}: a reader never reaches them from the text."""
    body = glossary.split("```{glossary}", 1)[1].split("```", 1)[0]
    terms = [line for line in body.splitlines() if line and not line.startswith((" ", ":"))]
    linked = {m.lower() for m in re.findall(r"\{term\}`(?:[^`<]*<)?([^`<>]+)>?`", chapters)}
    return [term for term in terms if term.lower() not in linked]


def test_every_glossary_term_is_linked_from_a_chapter():
    chapters = "".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "chapters").glob("*.ipynb")))
    assert glossary_terms_never_linked((ROOT / "glossary.md").read_text(encoding="utf-8"), chapters) == []
    glossary = "```{glossary}\n:sorted:\n\nFan-in\n  Inputs.\n\nLesion\n  Deleting a block.\n```\n"
    text = "the {term}`fan-in` and {term}`a lesion study <Lesion>`"
    assert glossary_terms_never_linked(glossary, text) == []
    assert glossary_terms_never_linked(glossary, "the {term}`fan-in`") == ["Lesion"]
