"""The gsheets destination: gspread's real client and google-auth's real service-account sign-in
against a Google Sheets API on 127.0.0.1; every result read back from the fake's cells."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from eval_framework import export_results
from eval_framework.errors import ConfigError
from eval_framework.results import Bundle
from eval_framework.sinks import gsheets_api
from eval_framework.sinks.gsheets import SheetsSink
from eval_framework.sinks.gsheets_table import KEY
from tests.conftest import USER_MODELS
from tests.fakes.loopback import loopback_server
from tests.fakes.sheets_http import FakeSheets, fake_sheets

EVAL = ("--models", USER_MODELS, "--llm-name", "HashLLM", "--task-name", "tiny-letters")
EMAIL = "exporter@eval-tests.iam.gserviceaccount.com"
SHEET = "evaluations"


@pytest.fixture(scope="module")
def keys() -> tuple[str, bytes]:
    """The service account's RSA key pair (PEM): google-auth signs real JWTs with it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture
def sheets(monkeypatch, keys, tmp_path):
    """The fake, a spreadsheet shared with the account as Editor, and the account's key file in
    GOOGLE_APPLICATION_CREDENTIALS."""
    with fake_sheets() as fake:
        fake.add_account(EMAIL, keys[1])
        fake.spreadsheet = fake.add_spreadsheet("Evals", {EMAIL: "writer"})
        fake.key = fake.key_file(tmp_path / "service-account.json", EMAIL, keys[0])
        monkeypatch.setenv(gsheets_api.API_URL_VAR, fake.url)
        monkeypatch.setenv(gsheets_api.CREDENTIALS_VAR, str(fake.key))
        monkeypatch.setattr(gsheets_api, "RETRY_WAIT_MAX", 0.0)
        yield fake


@pytest.fixture
def bundles(cli, tmp_path) -> list[Path]:
    """Two finished evaluations of one model: 3 samples (accuracy 0) and 6."""
    out = tmp_path / "out"
    for n in ("3", "6"):
        assert cli(*EVAL, "--num-samples", n, "--output-dir", out).code == 0
    return sorted((p for p in out.iterdir() if p.is_dir()), key=lambda p: _meta(p)["task"]["num_samples"])


def _meta(bundle: Path) -> dict:
    return json.loads((bundle / "metadata.json").read_text())


def _overall(bundle: Path) -> dict:
    return json.loads((bundle / "results.json").read_text())["metrics"]["overall"]


def _rows(fake: FakeSheets, title: str = SHEET) -> list[dict]:
    header, *rows = fake.values(fake.spreadsheet, title)
    return [dict(zip(header, row + [None] * (len(header) - len(row)), strict=True)) for row in rows]


def _config(fake: FakeSheets, **extra) -> dict:
    return {"spreadsheet_id": fake.spreadsheet, **extra}


def _row_batches(fake: FakeSheets) -> list[list[str]]:
    """The kinds of request in each write that is not a worksheet's creation."""
    batches = [[next(iter(r)) for r in w.body["requests"]] for w in fake.writes() if w.body]
    return [b for b in batches if b != ["addSheet"]]


def _fingerprint(bundle: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in bundle.iterdir()
        if p.is_file() and p.name != "exports.jsonl"
    }


def test_each_evaluation_becomes_a_typed_row_in_one_batch(sheets, bundles):
    summary = export_results(bundles, dest="gsheets", config=_config(sheets))
    assert summary.count("gsheets", "created") == 2
    header = sheets.values(sheets.spreadsheet, SHEET)[0]
    assert header[:5] == ["checkpoint", "checkpoint_version", "task", "num_fewshot", "num_samples"]
    assert header[-3:] == ["eval_framework_version", KEY, "bundle"]
    rows = _rows(sheets)
    assert [r["num_samples"] for r in rows] == [3, 6]
    for row, bundle in zip(rows, bundles, strict=True):
        metrics = _overall(bundle)
        assert row["acc"] == metrics["acc"]["value"]
        assert row["acc_norm_stderr"] == metrics["acc_norm"]["stderr"]
        assert row["acc_n"] == metrics["acc"]["n"]
        assert row[KEY] == _meta(bundle)["natural_key"]
        assert row["bundle"] == str(bundle.resolve())
    zero = rows[0]
    assert zero["acc"] == 0  # a zero is the number 0, never an empty cell or text
    assert isinstance(zero["acc"], float)
    assert zero["num_fewshot"] == 0
    assert isinstance(rows[1]["acc"], float)
    assert _row_batches(sheets) == [
        ["createDeveloperMetadata", "updateCells", "appendCells"],
        ["appendCells"],
    ]
    # every write is one spreadsheets.batchUpdate: never a values.update or clear of the whole sheet
    assert {w.kind for w in sheets.writes()} == {"spreadsheets.batchUpdate"}
    assert sheets.values(sheets.spreadsheet, "Sheet1") == []  # the worksheet was created beside it
    entry = json.loads((bundles[0] / "exports.jsonl").read_text().splitlines()[-1])
    assert entry["status"] == "created"
    assert sheets.spreadsheet in entry["location"]


def test_exporting_again_sends_nothing_and_force_rewrites_in_place(sheets, bundles):
    export_results(bundles, dest="gsheets", config=_config(sheets))
    before, writes = sheets.values(sheets.spreadsheet, SHEET), len(sheets.writes())
    again = export_results(bundles, dest="gsheets", config=_config(sheets))
    assert again.count("gsheets", "unchanged") == 2
    assert len(sheets.writes()) == writes  # nothing was sent
    forced = export_results(bundles[:1], dest="gsheets", config=_config(sheets), force=True)
    assert forced.count("gsheets", "updated") == 1
    assert len(sheets.writes()) == writes + 1  # one batch for the one export
    assert _row_batches(sheets)[-1] == ["updateCells"]
    assert sheets.values(sheets.spreadsheet, SHEET) == before


def test_a_changed_row_is_updated_in_place_and_a_users_own_column_and_rows_stay(sheets, bundles):
    export_results(bundles, dest="gsheets", config=_config(sheets))
    grid = sheets.sheet(sheets.spreadsheet, SHEET)
    width = len(sheets.values(sheets.spreadsheet, SHEET)[0])
    acc = sheets.values(sheets.spreadsheet, SHEET)[0].index("acc")
    grid.cells[(0, width)] = "notes"  # the user's own column, their note on row 2
    grid.cells[(1, width)] = "baseline"
    grid.cells[(3, 0)] = "a row of the user's own"
    grid.cells[(1, acc)] = 0.99  # the sheet now disagrees with the evaluation
    summary = export_results(bundles, dest="gsheets", config=_config(sheets))
    assert summary.count("gsheets", "updated") == 1
    assert summary.count("gsheets", "unchanged") == 1
    rows = _rows(sheets)
    assert len(rows) == 3  # updated where it was: no row added
    assert rows[0]["acc"] == 0
    assert rows[0]["notes"] == "baseline"
    assert rows[2]["checkpoint"] == "a row of the user's own"
    assert rows[2][KEY] is None
    (batch,) = [w.body["requests"] for w in sheets.writes()][-1:]
    (update,) = batch
    assert update["updateCells"]["start"]["rowIndex"] == 1
    assert len(update["updateCells"]["rows"][0]["values"]) == width  # the notes column is not written


def test_a_new_metric_becomes_columns_after_the_existing_ones(sheets, bundles):
    export_results(bundles[:1], dest="gsheets", config=_config(sheets, log_metrics=["acc_norm"]))
    header = sheets.values(sheets.spreadsheet, SHEET)[0]
    assert {"acc_norm", "acc_norm_stderr", "acc_norm_n"} <= set(header)
    assert "acc" not in header  # substring match: acc_norm's stderr and n follow it, acc does not
    grid = sheets.sheet(sheets.spreadsheet, SHEET)
    grid.cells[(0, len(header))] = "notes"
    grid.cols = len(header) + 1  # a narrow worksheet: columns are added to the grid as needed
    export_results(bundles[1:], dest="gsheets", config=_config(sheets))
    new_header = sheets.values(sheets.spreadsheet, SHEET)[0]
    assert new_header[: len(header) + 1] == [*header, "notes"]  # nothing moved
    assert new_header[len(header) + 1 :] == ["acc", "acc_stderr", "acc_n"]
    first, second = _rows(sheets)
    assert first["acc"] is None  # the first export did not carry it
    assert second["acc"] == _overall(bundles[1])["acc"]["value"]
    assert second["acc_norm"] == _overall(bundles[1])["acc_norm"]["value"]
    grid = sheets.sheet(sheets.spreadsheet, SHEET)  # a batch replaces the worksheet whole
    assert grid.cols == len(new_header)
    assert len(grid.metadata) == 2  # each header extension carried its guard


def test_two_exporters_extending_the_header_at_once_lose_nothing(sheets, bundles):
    """Exporter A has read the (empty) worksheet and its batch is on the way when exporter B writes
    a different header; A's batch is refused whole, and A writes again under B's header."""
    a = SheetsSink(SheetsSink.Config(**_config(sheets, log_metrics=["acc_norm"])))
    b = SheetsSink(SheetsSink.Config(**_config(sheets)))
    a.preflight()
    b.preflight()
    a.publish(Bundle(bundles[0]))  # the worksheet exists; now race on a fresh one
    sheets.sheet(sheets.spreadsheet, SHEET).cells.clear()
    writes = len(sheets.writes())
    held = sheets.hold("spreadsheets.batchUpdate")
    done: list = []
    racer = threading.Thread(target=lambda: done.append(a.publish(Bundle(bundles[0]))))
    racer.start()
    assert held.arrived.wait(30)
    assert b.publish(Bundle(bundles[1])).status == "created"
    held.release.set()
    racer.join(30)
    assert done[0].status == "created"
    assert len(sheets.writes()) == writes + 3  # A's refused batch, B's, A's planned again
    header = sheets.values(sheets.spreadsheet, SHEET)[0]
    assert len(header) == len(set(header))
    rows = {r["num_samples"]: r for r in _rows(sheets)}
    assert rows[3]["acc_norm"] == 0
    assert rows[3]["acc"] is None  # A's filtered row, under B's header
    assert rows[6]["acc"] == _overall(bundles[1])["acc"]["value"]
    assert rows[3][KEY] == _meta(bundles[0])["natural_key"]


def test_a_spreadsheet_is_found_by_its_name(sheets, bundles, cli):
    summary = export_results(bundles[:1], dest="gsheets", config={"spreadsheet_name": "Evals"})
    assert summary.count("gsheets", "created") == 1
    assert len(_rows(sheets)) == 1
    missing = cli(
        "export", *bundles, "--dest", "gsheets", "--config", json.dumps({"spreadsheet_name": "Nope"})
    )
    assert missing.code == 2
    assert f"no spreadsheet named 'Nope' is shared with the service account {EMAIL}" in missing.err
    other = sheets.add_spreadsheet("Evals", {EMAIL: "reader"})
    twice = cli(
        "export", *bundles, "--dest", "gsheets", "--config", json.dumps({"spreadsheet_name": "Evals"})
    )
    assert twice.code == 2
    assert "2 spreadsheets named 'Evals'" in twice.err
    assert other in twice.err
    assert "give spreadsheet_id" in twice.err


def test_a_spreadsheet_url_works_as_its_id_and_a_worksheet_is_made_by_name(sheets, bundles):
    url = f"https://docs.google.com/spreadsheets/d/{sheets.spreadsheet}/edit#gid=0"
    export_results(bundles[:1], dest="gsheets", config={"spreadsheet_id": url, "worksheet": "nightly runs"})
    assert len(_rows(sheets, "nightly runs")) == 1


def test_the_command_exports_and_a_dry_run_sends_nothing(sheets, bundles, cli):
    args = ("export", *bundles, "--dest", "gsheets", "--config", json.dumps(_config(sheets)))
    plan = cli(*args, "--dry-run")
    assert plan.code == 0, plan.err
    assert [p["would"] for p in json.loads(plan.out)] == ["created", "created"]
    assert sheets.writes() == []  # not even the worksheet
    first = cli(*args, "--log-metrics", "acc")
    assert first.code == 0, first.err
    assert "gsheets: 2 created, 0 updated, 0 unchanged" in first.out
    assert len(_rows(sheets)) == 2
    again = cli(*args, "--log-metrics", "acc", "--dry-run")
    assert [p["would"] for p in json.loads(again.out)] == ["unchanged", "unchanged"]


def test_quota_errors_are_retried_then_the_export_goes_through(sheets, bundles):
    sheets.fail("spreadsheets.batchUpdate", 429, times=2)
    summary = export_results(bundles[:1], dest="gsheets", config=_config(sheets))
    assert summary.count("gsheets", "created") == 1
    assert len(_rows(sheets)) == 1


PREFLIGHT_FAILURES = [
    ("spreadsheets.get", 403, [f"share the spreadsheet with the service account {EMAIL} as Editor"]),
    ("spreadsheets.get", 404, ["answered 404 NOT_FOUND", "check spreadsheet_id"]),
    (
        "spreadsheets.get",
        429,
        ["answered 429 RESOURCE_EXHAUSTED", f"still after {gsheets_api.ATTEMPTS} tries"],
    ),
    ("spreadsheets.get", 500, ["GET http://127.0.0.1:", "/v4/spreadsheets/", "answered 500 INTERNAL"]),
    ("token", 400, ["/token refused the service account", "Add key > JSON"]),
]
PUBLISH_FAILURES = [
    ("spreadsheets.batchUpdate", 403, [f"share the spreadsheet with the service account {EMAIL} as Editor"]),
    ("spreadsheets.batchUpdate", 404, ["answered 404 NOT_FOUND", "check spreadsheet_id"]),
    ("spreadsheets.batchUpdate", 429, ["Google's request quota", "wait a minute and export again"]),
    ("spreadsheets.batchUpdate", 500, [":batchUpdate answered 500 INTERNAL", "exporting again is safe"]),
]


@pytest.mark.parametrize(
    "case",
    [(*f, 2) for f in PREFLIGHT_FAILURES] + [(*f, 7) for f in PUBLISH_FAILURES],
    ids=[f"preflight-{f[0]}-{f[1]}" for f in PREFLIGHT_FAILURES]
    + [f"publish-{f[1]}" for f in PUBLISH_FAILURES],
)
def test_a_failure_says_what_why_and_what_to_do(sheets, bundles, cli, keys, case):
    """(kind of request failing, its status, words the error must hold, exit code)."""
    kind, status, says, code = case
    before = _fingerprint(bundles[0])
    sheets.fail(kind, status)
    result = cli("export", *bundles, "--dest", "gsheets", "--config", json.dumps(_config(sheets)))
    assert result.code == code, result.err
    for words in says:
        assert words in result.err
    assert _fingerprint(bundles[0]) == before
    recorded = bundles[0] / "exports.jsonl"
    if code == 2:
        assert not recorded.exists()  # refused before anything was sent: nothing to record
    ledger = recorded.read_text() if code == 7 else ""
    key_line = keys[0].splitlines()[5]  # a line of the private key's body
    assert key_line not in result.err + result.out + ledger
    if code == 7:
        assert "--dest gsheets" in result.err  # the retry command
        assert json.loads(ledger.splitlines()[-1])["status"] == "failed"
    retried = sheets.count(kind)
    if status == 429:
        assert retried >= gsheets_api.ATTEMPTS
    if code == 7 and status == 500:
        assert retried == len(bundles)  # once per bundle: a write that may have been applied is not repeated


def test_an_unreachable_or_silent_service_is_named_in_bounded_time(sheets, bundles, cli, monkeypatch):
    config = json.dumps(_config(sheets))
    monkeypatch.setenv(gsheets_api.API_URL_VAR, "http://127.0.0.1:9")  # nothing listens there
    refused = cli("export", *bundles, "--dest", "gsheets", "--config", config)
    assert refused.code == 2
    assert "cannot reach GET http://127.0.0.1:9/v4/spreadsheets/" in refused.err
    assert gsheets_api.API_URL_VAR in refused.err
    monkeypatch.setenv(gsheets_api.API_URL_VAR, sheets.url)
    monkeypatch.setattr(gsheets_api, "READ_TIMEOUT_S", 0.3)
    sheets.hang("spreadsheets.get")
    silent = cli("export", *bundles, "--dest", "gsheets", "--config", config)
    assert silent.code == 2
    assert "/v4/spreadsheets/" in silent.err
    assert "did not answer within 0.3 s" in silent.err
    assert sheets.count("spreadsheets.get") == gsheets_api.TIMEOUT_ATTEMPTS


def test_a_viewer_only_share_or_another_tables_worksheet_is_refused_before_sending(sheets, bundles):
    viewer = sheets.add_spreadsheet("Shared to view", {EMAIL: "reader"})
    with pytest.raises(ConfigError, match=f"the service account {EMAIL} may only view"):
        export_results(bundles, dest="gsheets", config={"spreadsheet_id": viewer})
    grid = sheets.sheet(sheets.spreadsheet, "Sheet1")
    grid.cells[(0, 0)] = "budget"
    with pytest.raises(ConfigError, match="holds other data"):
        export_results(bundles, dest="gsheets", config=_config(sheets, worksheet="Sheet1"))
    assert sheets.writes() == []
    assert grid.cells == {(0, 0): "budget"}


@pytest.mark.parametrize(
    ("key", "says"),
    [
        (None, "set service_account_file in its config, or GOOGLE_APPLICATION_CREDENTIALS"),
        ({"installed": {"client_id": "x", "client_secret": "y"}}, "is an OAuth client file"),
        ({"type": "authorized_user", "refresh_token": "r"}, "is a 'authorized_user' credential"),
        ({"type": "service_account", "client_email": EMAIL}, "lacks private_key, token_uri"),
        ("missing", "does not exist"),
    ],
)
def test_a_missing_or_wrong_key_file_is_refused_before_anything_is_sent(
    sheets, bundles, tmp_path, monkeypatch, key, says
):
    monkeypatch.delenv(gsheets_api.CREDENTIALS_VAR)
    config = _config(sheets)
    if key == "missing":
        config["service_account_file"] = str(tmp_path / "nowhere.json")
    elif key is not None:
        (tmp_path / "k.json").write_text(json.dumps(key))
        config["service_account_file"] = str(tmp_path / "k.json")
    with pytest.raises(ConfigError) as info:
        export_results(bundles, dest="gsheets", config=config)
    assert says in str(info.value)
    assert sheets.requests == []


def test_a_key_google_does_not_know_is_refused_at_sign_in(sheets, bundles, tmp_path):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    wrong = sheets.key_file(tmp_path / "old-key.json", EMAIL, pem)
    with pytest.raises(ConfigError) as info:
        export_results(bundles, dest="gsheets", config=_config(sheets, service_account_file=str(wrong)))
    assert "signing in failed" in str(info.value)
    assert "invalid_grant" in str(info.value)
    assert pem.splitlines()[3] not in str(info.value)
    assert sheets.writes() == []


def _plain_web_server(url: str) -> type[SimpleHTTPRequestHandler]:
    """Python's own file server (``python3 -m http.server``): a POST gets its 501 HTML page."""

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    return Handler


def test_a_failing_sign_in_server_is_said_as_such_not_as_a_revoked_key(sheets, bundles, cli, keys, tmp_path):
    with loopback_server(_plain_web_server) as httpd:
        token_uri = f"http://127.0.0.1:{httpd.server_address[1]}/token"
        key = sheets.key_file(tmp_path / "k.json", EMAIL, keys[0], token_uri=token_uri)
        config = json.dumps(_config(sheets, service_account_file=str(key)))
        result = cli("export", *bundles, "--dest", "gsheets", "--config", config)
    assert result.code == 2
    host = f"127.0.0.1:{httpd.server_address[1]}"
    assert f"the sign-in server {host} ({token_uri}) is failing (HTTP 501)" in result.err
    assert f"retry later; if it keeps failing, check token_uri in {key}" in result.err
    for wrong in ("DOCTYPE", "<html", "refused the service account", "may have been deleted", "JSON key"):
        assert wrong not in result.err
    sheets.fail("token", 502)  # a JSON answer, but a server error all the same
    result = cli("export", *bundles, "--dest", "gsheets", "--config", json.dumps(_config(sheets)))
    assert result.code == 2
    assert (
        f"the sign-in server {urlsplit(sheets.url).netloc} ({sheets.url}/token) is failing (HTTP 502)"
        in result.err
    )
    assert "may have been deleted" not in result.err
    assert sheets.writes() == []


def test_an_unreachable_token_uri_is_named_as_the_key_files_not_the_api_url(
    sheets, bundles, cli, keys, tmp_path
):
    key = sheets.key_file(tmp_path / "k.json", EMAIL, keys[0], token_uri="http://127.0.0.1:9/token")
    result = cli(
        "export",
        *bundles,
        "--dest",
        "gsheets",
        "--config",
        json.dumps(_config(sheets, service_account_file=str(key))),
    )
    assert result.code == 2
    assert (
        "cannot reach the sign-in server 127.0.0.1:9 (http://127.0.0.1:9/token; connection refused)"
        in result.err
    )
    assert f"check network access, and check token_uri in {key}" in result.err
    assert gsheets_api.API_URL_VAR not in result.err
    assert sheets.requests == []


def test_a_config_needs_exactly_one_spreadsheet(bundles):
    for config in ({}, {"spreadsheet_id": "abc", "spreadsheet_name": "Evals"}):
        with pytest.raises(ConfigError, match="give exactly one of spreadsheet_id and spreadsheet_name"):
            export_results(bundles, dest="gsheets", config=config)
    with pytest.raises(ConfigError, match="unknown config key 'sheet'"):
        export_results(bundles, dest="gsheets", config={"sheet": "x"})


def test_importing_the_framework_does_not_import_gspread_and_a_missing_extra_is_named(
    bundles, monkeypatch, sheets
):
    code = "import sys, eval_framework, eval_framework.sinks.gsheets; assert 'gspread' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
    monkeypatch.setitem(sys.modules, "gspread", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'eval_framework\[gsheets\]'"):
        export_results(bundles, dest="gsheets", config=_config(sheets))
    assert sheets.requests == []


def test_the_fake_answers_gspreads_own_calls_as_the_api_does(sheets):
    """The fake's other operations, through gspread's own Worksheet methods: its shapes hold."""
    client = gsheets_api.connect(gsheets_api.load_service_account(None))
    book = client.open("Evals")  # Drive files.list, then spreadsheets.get
    assert book.id == sheets.spreadsheet
    ws = book.sheet1
    ws.update([["a", "b"], [1, "2"]], "A1", raw=False)  # values.update, USER_ENTERED: "2" is a number
    appended = ws.append_rows([[0, "0"]], value_input_option="RAW")  # values.append
    assert appended["updates"]["updatedRange"] == "'Sheet1'!A3:B3"
    ws.batch_update([{"range": "C1", "values": [["c"]]}])  # values.batchUpdate
    assert ws.batch_get(["A1:C3"])[0] == [["a", "b", "c"], ["1", "2"], ["0", "0"]]  # values.batchGet
    assert sheets.values(sheets.spreadsheet, "Sheet1") == [["a", "b", "c"], [1, 2], [0, "0"]]
    added = book.add_worksheet("more", rows=5, cols=3)  # spreadsheets.batchUpdate addSheet
    assert (added.row_count, added.col_count) == (5, 3)
