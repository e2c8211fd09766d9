"""``eval_framework compare``: the formats, and each bad input as one line and an exit code."""

from __future__ import annotations

import json
import os

V = ("tiny-letters-v0", "tiny-letters-v1", "tiny-letters-v2")


def _one_line(result, code: int, *said: str) -> None:
    assert result.code == code, (result.code, result.err)
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.err
    for text in said:
        assert text in lines[0], result.err


def test_table_is_the_default(cli, copy_bundles):
    result = cli("compare", copy_bundles("v0", "v1", "v2"))
    assert result.code == 0, result.err
    assert "tiny-letters: 3 versions, each against its predecessor (95% CI)" in result.out
    v1_row = next(line for line in result.out.splitlines() if V[1] in line and " acc " in line)
    assert V[0] in v1_row
    assert "McNemar, n=200" in v1_row
    assert "<0.001" in v1_row


def test_json_and_markdown(cli, copy_bundles):
    out = copy_bundles("v0", "v1", "v2")
    result = cli("compare", out, "--format", "json", "--baseline", "v0")
    assert result.code == 0, result.err
    data = json.loads(result.out)  # nothing but the document on stdout
    assert data["baseline"] == V[0]
    assert {(c["version"], c["baseline"]) for c in data["comparisons"]} == {(V[1], V[0]), (V[2], V[0])}
    md = cli("compare", out, "--format", "md")
    assert md.code == 0
    assert md.out.count("| version | metric |") == 1


def test_unshared_samples_are_warned_about(cli, copy_bundles):
    result = cli("compare", copy_bundles("v0-40", "v1"), "--format", "json")
    assert result.code == 0, result.err
    assert (
        "warning: tiny-letters-v1 vs tiny-letters-v0 on tiny-letters: sample sets differ: 160 only in"
        in result.err
    )
    test = json.loads(result.out)["comparisons"][0]
    assert (test["n_shared"], test["n_only_candidate"], test["n_only_baseline"]) == (40, 160, 0)


def test_a_directory_without_bundles(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    _one_line(cli("compare", tmp_path / "empty"), 2, "no evaluation bundles", "pass bundle directories")


def test_a_bundle_with_corrupt_json(cli, copy_bundles):
    out = copy_bundles("v0", "v1")
    bundle = next(out.glob("tiny-letters-v1*"))
    (bundle / "results.json").write_text('{"metrics": 3}')
    _one_line(cli("compare", out), 5, "cannot compare", "results.json is damaged", "move the bundle away")
    assert (bundle / "results.json").read_text() == '{"metrics": 3}'


def test_a_baseline_not_among_the_versions(cli, copy_bundles):
    _one_line(cli("compare", copy_bundles("v0", "v1"), "--baseline", "v40"), 2, "--baseline v40 is not among")


def test_bad_formats_and_plot_paths(cli, copy_bundles, tmp_path):
    out = copy_bundles("v0", "v1")
    _one_line(cli("compare", out, "--format", "csv"), 2, "--format csv is not one of table, json, md")
    _one_line(
        cli("compare", out, "--plot", tmp_path / "p.svg"), 2, "unknown extension '.svg'", ".png", ".html"
    )
    _one_line(cli("compare", out, "--plot", tmp_path / "nowhere" / "p.html"), 5, "does not exist")
    _one_line(cli("compare", out, "--confidence", "1.5"), 2, "--confidence 1.5 is not between 0 and 1")
    _one_line(cli("compare", out, "--resamples", "0"), 2, "--resamples 0 must be at least 1")
    (tmp_path / "taken.html").mkdir()
    _one_line(cli("compare", out, "--plot", tmp_path / "taken.html"), 5, "is a directory")
    (tmp_path / "file").write_text("x")
    _one_line(cli("compare", out, "--plot", tmp_path / "file" / "p.png"), 5, "is a file, not a directory")


def test_an_unwritable_plot_path(cli, copy_bundles, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root writes into read-only directories: let the check see what others would
        import eval_framework.compare.plot_data as plot_data

        real = os.access
        monkeypatch.setattr(plot_data.os, "access", lambda p, mode: False if p == locked else real(p, mode))
    try:
        _one_line(cli("compare", copy_bundles("v0", "v1"), "--plot", locked / "p.html"), 5, "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_a_directory_that_refuses_files_even_to_root_is_said_before_any_work(cli, copy_bundles):
    """/proc passes os.access for root, but no file can be created there: the up-front try says so."""
    result = cli("compare", copy_bundles("v0", "v1"), "--plot", "/proc/versions.html")
    _one_line(result, 5, "cannot write --plot /proc/versions.html", "pick a writable path")
    assert result.out == ""  # before the tables


def test_a_plot_that_cannot_be_written_leaves_nothing_behind(cli, copy_bundles, tmp_path, monkeypatch):
    """A write that fails midway (a full disk) is one line, and no partial file stays."""
    import eval_framework.compare.plot_data as plot_data

    def full(fd: int, mode: str):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plot_data.os, "fdopen", full)
    target = tmp_path / "plots"
    target.mkdir()
    _one_line(
        cli("compare", copy_bundles("v0", "v1"), "--plot", target / "p.html"), 5, "No space left on device"
    )
    assert list(target.iterdir()) == []


def test_a_collection_reference(cli, evaluated, tmp_path):
    from tests.compare.bundles import restamp

    out = tmp_path / "evals"
    for number, name in ((7, "v0"), (12, "v2")):
        restamp(evaluated[name], out / name, qualified_name=f"acme/wandb-registry-model/llama-sft:v{number}")
    result = cli("compare", "wandb-registry-model/llama-sft", "--output-dir", out, "--format", "json")
    assert result.code == 0, result.err
    assert [v["label"] for v in json.loads(result.out)["versions"]] == ["v7", "v12"]
    _one_line(cli("compare", "llama-sft", "--output-dir", out, "--baseline", "v3"), 2, "--baseline v3")
    _one_line(cli("compare", "nothing-here", "--output-dir", out), 2, "no finished evaluations of")
