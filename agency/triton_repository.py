"""The model repository Triton serves, rendered from the committed templates plus rollout state.

``model_repository/`` in git holds templates (``<model>/config.pbtxt`` + ``<model>/1/model.py``).
Triton serves a rendered copy under ``<triton home>/repository`` in explicit model-control mode,
so a rollout can add a model version without touching the checkout:

- ``<model>/`` serves exactly one version (``version_policy: specific``), the *serving* one;
- ``<model>_canary/`` exists only while a rollout evaluates a *candidate* version, so production
  traffic (which never names a version) cannot reach an unproven model;
- ``<version>/version.json`` holds the version's parameter overrides (for example
  ``compute_type``), read by ``model.py`` on load.

Rollout state lives next to the repository (``<triton home>/rollouts/<model>.json``) and
survives restarts: a promoted version is still served after Triton restarts. The rollout
activities and Triton must therefore share this directory (same host, or a shared volume).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

CANARY_SUFFIX = "_canary"
VERSION_FILE = "version.json"
TEMPLATE_VERSION = "1"


def canary_model_name(model: str) -> str:
    return f"{model}{CANARY_SUFFIX}"


@dataclass
class RolloutState:
    """Which version of one model serves, which (if any) is under evaluation, and every
    version's parameter overrides (kept after promotion so a rollback target stays known)."""

    model: str
    serving: int = 1
    candidate: int | None = None
    candidate_rollout_id: str | None = None
    versions: dict[str, dict[str, str]] = field(default_factory=dict)

    def parameters(self, version: int) -> dict[str, str]:
        return dict(self.versions.get(str(version), {}))


class RepositoryError(RuntimeError):
    """The rendered repository cannot do what was asked (unknown model, no candidate...)."""


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


_NAME_LINE = re.compile(r'^name:\s*"[^"]*"\s*$', re.MULTILINE)
_VERSION_POLICY = re.compile(r"^version_policy\s*:", re.MULTILINE)


def render_config(template: str, *, name: str, version: int) -> str:
    """The template's config.pbtxt renamed to ``name`` and pinned to one version."""
    if not _NAME_LINE.search(template):
        raise RepositoryError(f"template config for {name} has no name line")
    if _VERSION_POLICY.search(template):
        raise RepositoryError(f"template config for {name} must not set version_policy (rendering owns it)")
    text = _NAME_LINE.sub(f'name: "{name}"', template, count=1)
    return text.rstrip() + f"\n\n# Rendered: serve exactly this version.\nversion_policy: {{ specific: {{ versions: [ {version} ] }} }}\n"


class TritonRepository:
    """Renders and updates the served repository. Every write is atomic and idempotent."""

    def __init__(self, templates: Path, home: Path, base_parameters: dict[str, dict[str, str]] | None = None) -> None:
        self.templates = templates
        self.home = home
        # Version 1 of each model: the template as configured for this deployment.
        self.base_parameters = base_parameters or {}

    @classmethod
    def from_settings(cls, settings) -> TritonRepository:  # noqa: ANN001 - agency.settings.Settings
        return cls(
            settings.model_repository,
            settings.triton_home,
            {
                "content_generator": {"compute_type": settings.generator_compute_type},
                # The streaming twin computes exactly like the generator it mirrors.
                "content_generator_stream": {"compute_type": settings.generator_compute_type},
            },
        )

    @property
    def root(self) -> Path:
        """What ``--model-repository`` points at."""
        return self.home / "repository"

    def template_models(self) -> list[str]:
        return sorted(p.parent.name for p in self.templates.glob("*/config.pbtxt"))

    def _require_template(self, model: str) -> Path:
        template = self.templates / model
        if not (template / "config.pbtxt").is_file():
            raise RepositoryError(f"no model {model!r} in {self.templates}")
        return template

    # ---- rollout state -----------------------------------------------------------------
    def _state_path(self, model: str) -> Path:
        return self.home / "rollouts" / f"{model}.json"

    def state(self, model: str) -> RolloutState:
        self._require_template(model)
        try:
            state = RolloutState(**json.loads(self._state_path(model).read_text()))
        except FileNotFoundError:
            state = RolloutState(model=model)
        # Version 1 always follows this deployment's settings (e.g. the configured compute type).
        state.versions["1"] = dict(self.base_parameters.get(model, {}))
        return state

    def _save(self, state: RolloutState) -> None:
        _write_atomic(self._state_path(state.model), json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")

    # ---- rendering ---------------------------------------------------------------------
    def _write_version(self, model_dir: Path, template: Path, version: int, parameters: dict[str, str]) -> None:
        version_dir = model_dir / str(version)
        version_dir.mkdir(parents=True, exist_ok=True)
        for source in (template / TEMPLATE_VERSION).iterdir():
            if source.is_file() and source.name != VERSION_FILE:
                target = version_dir / source.name
                if not target.exists() or target.read_bytes() != source.read_bytes():
                    _write_atomic(target, source.read_text())
        _write_atomic(version_dir / VERSION_FILE, json.dumps(parameters, indent=2, sort_keys=True) + "\n")

    def _render_model(self, name: str, template: Path, version: int, parameters: dict[str, str]) -> None:
        model_dir = self.root / name
        self._write_version(model_dir, template, version, parameters)
        config = render_config((template / "config.pbtxt").read_text(), name=name, version=version)
        _write_atomic(model_dir / "config.pbtxt", config)

    def _prune(self, name: str, keep: int) -> None:
        model_dir = self.root / name
        for child in model_dir.iterdir() if model_dir.is_dir() else ():
            if child.is_dir() and child.name.isdigit() and int(child.name) != keep:
                shutil.rmtree(child, ignore_errors=True)

    def render(self) -> Path:
        """Sync every model from the templates and rollout state (at server start)."""
        self.root.mkdir(parents=True, exist_ok=True)
        expected: set[str] = set()
        for model in self.template_models():
            template = self.templates / model
            state = self.state(model)
            self._render_model(model, template, state.serving, state.parameters(state.serving))
            self._prune(model, state.serving)
            expected.add(model)
            if state.candidate is not None:
                canary = canary_model_name(model)
                self._render_model(canary, template, state.candidate, state.parameters(state.candidate))
                self._prune(canary, state.candidate)
                expected.add(canary)
        for child in self.root.iterdir():
            if child.is_dir() and child.name not in expected:
                shutil.rmtree(child, ignore_errors=True)
        return self.root

    # ---- rollout steps -----------------------------------------------------------------
    def stage_candidate(self, model: str, parameters: dict[str, str], rollout_id: str) -> int:
        """Write the candidate as the next version of ``<model>_canary``; returns its version.

        Idempotent per rollout: the same ``rollout_id`` gets the same version back.
        """
        template = self._require_template(model)
        state = self.state(model)
        if state.candidate is not None and state.candidate_rollout_id != rollout_id:
            raise RepositoryError(
                f"{model} already has candidate version {state.candidate} (rollout {state.candidate_rollout_id})"
            )
        if state.candidate is None:
            state.candidate = max(int(v) for v in state.versions) + 1
            state.candidate_rollout_id = rollout_id
            state.versions[str(state.candidate)] = dict(parameters)
            self._save(state)
        self._render_model(canary_model_name(model), template, state.candidate, state.parameters(state.candidate))
        return state.candidate

    def promote(self, model: str, version: int) -> None:
        """Make ``version`` the serving version of ``model`` (files only; then reload in Triton)."""
        template = self._require_template(model)
        state = self.state(model)
        if state.serving != version:
            if state.candidate != version:
                raise RepositoryError(f"{model} version {version} is not the candidate")
            state.serving = version
            state.candidate = None
            state.candidate_rollout_id = None
            self._save(state)
        self._render_model(model, template, version, state.parameters(version))

    def discard_candidate(self, model: str, rollout_id: str) -> None:
        """Forget the candidate staged by ``rollout_id`` (after Triton unloaded the canary).

        Idempotent; a candidate of another rollout is left alone.
        """
        state = self.state(model)
        if state.candidate is not None and state.candidate_rollout_id != rollout_id:
            return
        if state.candidate is not None:
            state.versions.pop(str(state.candidate), None)
            state.candidate = None
            state.candidate_rollout_id = None
            self._save(state)
        shutil.rmtree(self.root / canary_model_name(model), ignore_errors=True)

    def finish_promotion(self, model: str) -> None:
        """Remove the canary model and old version folders once Triton serves the new version."""
        state = self.state(model)
        self._prune(model, state.serving)
        if state.candidate is None:
            shutil.rmtree(self.root / canary_model_name(model), ignore_errors=True)
