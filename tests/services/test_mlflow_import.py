"""Import from a real MLflow tracking store (SQLite) populated by the real ``mlflow`` package."""

from __future__ import annotations

import contextlib
import hashlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airlock.config import Settings
from airlock.errors import Conflict, NotFound
from airlock.services.identity import Actor
from airlock.services.mlflow_import import airlock_name, import_mlflow
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock_testkit import Cli, write_model

pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

MODEL = "Support Bot"


@dataclass
class Store:
    uri: str
    client: Any
    runs: list[str]
    folders: list[Path]
    artifacts: Path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Two runs logged with params, metrics and a model folder; two versions; two aliases.

    MLflow's own SQLAlchemy models raise deprecation warnings, which this suite turns into
    errors: they are silenced while the fixture drives MLflow (the importer silences them
    itself, which the tests check by running it outside this block).
    """
    with quiet():
        return _populate(tmp_path)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _populate(tmp_path: Path) -> Store:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    artifacts = tmp_path / "mlartifacts"
    experiment = client.create_experiment("support", artifact_location=artifacts.as_uri())
    client.create_registered_model(MODEL, description="Answers support tickets.")
    runs, folders = [], []
    for i in (1, 2):
        run = client.create_run(experiment, tags={"mlflow.source.git.commit": f"c0ffee{i}"})
        rid = run.info.run_id
        client.log_param(rid, "learning_rate", str(0.001 * i))
        client.log_param(rid, "epochs", str(2 + i))
        client.log_metric(rid, "accuracy", 0.70 + i / 10)
        client.log_metric(rid, "loss", 1.0 / i)
        folder = write_model(tmp_path / f"model-v{i}", shards=1, seed=i, MLmodel="flavors: {}\n")
        client.log_artifacts(rid, str(folder), artifact_path="model")
        client.set_terminated(rid)
        client.create_model_version(MODEL, f"runs:/{rid}/model", rid)
        runs.append(rid)
        folders.append(folder)
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    return Store(uri, client, runs, folders, artifacts)


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    with Workspace.open(sqlite_settings, create=True) as w:
        yield w


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_import_versions_aliases_lineage_and_metrics_idempotently(
    store: Store, ws: Workspace, alice: Actor
) -> None:
    report = import_mlflow(ws, tracking_uri=store.uri, actor=alice)
    assert [(v.ref, v.created) for v in report.versions] == [
        ("support-bot@1.0.0", True),
        ("support-bot@2.0.0", True),
    ]
    assert report.new_releases == 2 and report.moved_aliases == 2
    reg = Registry(ws)
    for i, folder in enumerate(store.folders, start=1):
        manifest = reg.show(f"support-bot@{i}.0.0").manifest
        files = {f.path: f.digest for f in manifest.files}
        assert files == {p.name: sha256(p) for p in folder.iterdir()}
        assert manifest.metrics == pytest.approx({"accuracy": 0.70 + i / 10, "loss": 1.0 / i})
        config = manifest.lineage.training_config
        assert config["params"] == {"learning_rate": str(0.001 * i), "epochs": str(2 + i)}
        assert config["mlflow"]["registered_model"] == MODEL
        assert config["mlflow"]["version"] == i
        assert config["mlflow"]["run_id"] == store.runs[i - 1]
        assert config["mlflow"]["source"] == f"runs:/{store.runs[i - 1]}/model"
        assert manifest.lineage.code is not None
        assert manifest.lineage.code.commit == f"c0ffee{i}"
        assert manifest.lineage.parent == (None if i == 1 else "support-bot@1.0.0")
    aliases = {a.name: a.version for a in reg.aliases("support-bot")}
    assert aliases == {"champion": "1.0.0", "challenger": "2.0.0"}
    moves = reg.alias_history("support-bot", "champion")
    assert [(m.reason, m.actor) for m in moves] == [("imported from MLflow", "alice")]

    digests = {r.ref: r.digest for r in reg.releases("support-bot")}
    again = import_mlflow(ws, tracking_uri=store.uri, actor=alice)
    assert again.nothing_new
    assert {v.ref: v.digest for v in again.versions} == digests
    assert {r.ref: r.digest for r in reg.releases("support-bot")} == digests

    # The alias moved in MLflow: the import moves it, and only it.
    with quiet():
        store.client.set_registered_model_alias(MODEL, "champion", "2")
    moved = import_mlflow(ws, tracking_uri=store.uri, actor=alice, model=MODEL)
    assert moved.new_releases == 0 and moved.moved_aliases == 1
    assert {a.name: a.version for a in reg.aliases("support-bot")}["champion"] == "2.0.0"


def test_an_artifact_changed_under_an_imported_version_is_a_conflict(
    store: Store, ws: Workspace, alice: Actor
) -> None:
    import_mlflow(ws, tracking_uri=store.uri, actor=alice)
    logged = store.artifacts / store.runs[0] / "artifacts" / "model" / "config.json"
    assert logged.is_file()
    logged.write_text('{"architecture": "tiny", "hidden": 9}')
    with pytest.raises(Conflict, match="version 1 changed since it was imported"):
        import_mlflow(ws, tracking_uri=store.uri, actor=alice)
    assert len(Registry(ws).releases("support-bot")) == 2


def test_unknown_model_and_names(store: Store, ws: Workspace, alice: Actor) -> None:
    with pytest.raises(NotFound, match="MLflow"):
        import_mlflow(ws, tracking_uri=store.uri, actor=alice, model="nope")
    report = import_mlflow(ws, tracking_uri=store.uri, actor=alice, model=MODEL, name="helper")
    assert [v.ref for v in report.versions] == ["helper@1.0.0", "helper@2.0.0"]
    assert airlock_name("Fraud Detector (EU)") == "fraud-detector-eu"


def test_cli_summary_table(store: Store, tmp_path: Path) -> None:
    cli = Cli(tmp_path / ".airlock", {})
    cli("init")
    first = cli("import", "mlflow", "--tracking-uri", store.uri).output
    assert "support-bot@1.0.0" in first and "support-bot@2.0.0" in first
    assert "imported 2 release(s), moved 2 alias(es)" in first
    second = cli("import", "mlflow", "--tracking-uri", store.uri).output
    assert "nothing new" in second and "unchanged" in second
    shown = cli("show", "support-bot@champion").output
    assert "support-bot@1.0.0" in shown
