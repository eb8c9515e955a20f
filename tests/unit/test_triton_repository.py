"""The rendered Triton repository: what serves, what is a candidate, what survives a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agency.triton_repository import RepositoryError, TritonRepository, render_config

TEMPLATE = 'name: "gen"\nbackend: "python"\nmax_batch_size: 4\n'


@pytest.fixture
def repo(tmp_path: Path) -> TritonRepository:
    templates = tmp_path / "templates"
    (templates / "gen" / "1").mkdir(parents=True)
    (templates / "gen" / "config.pbtxt").write_text(TEMPLATE)
    (templates / "gen" / "1" / "model.py").write_text("# model code\n")
    return TritonRepository(templates, tmp_path / "home", {"gen": {"compute_type": "int8"}})


def served_versions(root: Path, model: str) -> list[str]:
    return sorted(p.name for p in (root / model).iterdir() if p.is_dir())


def test_render_serves_version_one_with_the_deployment_parameters(repo: TritonRepository):
    root = repo.render()
    config = (root / "gen" / "config.pbtxt").read_text()
    assert 'name: "gen"' in config and "version_policy: { specific: { versions: [ 1 ] } }" in config
    assert json.loads((root / "gen" / "1" / "version.json").read_text()) == {"compute_type": "int8"}
    assert (root / "gen" / "1" / "model.py").read_text() == "# model code\n"
    assert not (root / "gen_canary").exists()


def test_candidate_lives_beside_the_serving_model_until_promoted(repo: TritonRepository):
    root = repo.render()
    version = repo.stage_candidate("gen", {"compute_type": "float32"}, rollout_id="r1")
    assert version == 2
    assert repo.stage_candidate("gen", {"compute_type": "float32"}, rollout_id="r1") == 2  # idempotent
    with pytest.raises(RepositoryError):
        repo.stage_candidate("gen", {}, rollout_id="r2")  # one rollout at a time
    canary = (root / "gen_canary" / "config.pbtxt").read_text()
    assert 'name: "gen_canary"' in canary and "versions: [ 2 ]" in canary
    assert "versions: [ 1 ]" in (root / "gen" / "config.pbtxt").read_text()  # production untouched

    repo.promote("gen", 2)
    assert "versions: [ 2 ]" in (root / "gen" / "config.pbtxt").read_text()
    assert json.loads((root / "gen" / "2" / "version.json").read_text()) == {"compute_type": "float32"}
    repo.finish_promotion("gen")
    assert served_versions(root, "gen") == ["2"] and not (root / "gen_canary").exists()

    # A restart renders the promoted version again.
    repo.render()
    assert served_versions(root, "gen") == ["2"]
    assert repo.state("gen").serving == 2


def test_discarding_a_candidate_leaves_production_as_it_was(repo: TritonRepository):
    root = repo.render()
    repo.stage_candidate("gen", {"min_tokens": "200"}, rollout_id="r1")
    repo.discard_candidate("gen", "other-rollout")  # not its candidate: nothing happens
    assert repo.state("gen").candidate == 2
    repo.discard_candidate("gen", "r1")
    repo.discard_candidate("gen", "r1")  # idempotent
    state = repo.state("gen")
    assert state.candidate is None and state.serving == 1 and "2" not in state.versions
    assert not (root / "gen_canary").exists() and served_versions(root, "gen") == ["1"]


def test_render_config_refuses_templates_that_pin_versions():
    with pytest.raises(RepositoryError):
        render_config(TEMPLATE + "version_policy: { latest: { num_versions: 1 } }\n", name="gen", version=1)
