"""The canary rule that decides whether a candidate model version is promoted."""

from __future__ import annotations

from agency.agents.model_canary import CANARY_PROMPTS, evaluate_canary, is_garbage, is_refusal, percentile
from agency.contracts import CanaryPolicy, CanarySample

GOOD = "Stay hydrated on every trail with our steel bottle. Cold for 24 hours, light in your pack. #hiking"


def sample(candidate: str = GOOD, serving: str = GOOD, *, max_chars: int = 280, agreement: float = 0.9,
           candidate_s: float = 1.0, serving_s: float = 1.0) -> CanarySample:
    return CanarySample("p", max_chars, candidate, serving, candidate_s, serving_s, agreement)


def test_a_candidate_like_the_serving_version_passes():
    report = evaluate_canary([sample() for _ in range(6)], CanaryPolicy())
    assert report.passed and report.reasons == []
    assert report.mean_agreement == 0.9 and report.latency_ratio == 1.0


def test_outputs_over_the_channel_limit_fail_only_beyond_the_serving_versions_rate():
    long_text = GOOD * 4
    # The serving version overruns once too: the candidate is no worse, so it passes.
    same = [sample(long_text, long_text)] + [sample() for _ in range(5)]
    assert evaluate_canary(same, CanaryPolicy()).passed
    worse = [sample(long_text) for _ in range(4)] + [sample() for _ in range(2)]
    report = evaluate_canary(worse, CanaryPolicy())
    assert not report.passed
    assert report.length_violation_rate == round(4 / 6, 4) and report.serving_length_violation_rate == 0
    assert "4 of 6 outputs break the channel length limit" in report.reasons[0]


def test_refusals_and_garbage_fail_the_bad_output_rule():
    outputs = ["I'm sorry, I can't help with that.", "!!!! ???? ####", "buy buy buy buy buy buy buy buy buy", GOOD, GOOD, GOOD]
    report = evaluate_canary([sample(o) for o in outputs], CanaryPolicy(min_agreement=0))
    assert report.bad_output_rate == 0.5
    assert any("refusals or garbage" in r for r in report.reasons)


def test_low_agreement_and_slowness_each_fail_with_their_reason():
    report = evaluate_canary(
        [sample(agreement=0.2, candidate_s=5.0, serving_s=1.0) for _ in range(6)], CanaryPolicy()
    )
    assert not report.passed
    assert any("agreement" in r for r in report.reasons)
    assert any("p95 latency is 5.00x" in r for r in report.reasons)


def test_no_samples_never_passes():
    assert not evaluate_canary([], CanaryPolicy()).passed


def test_detectors_and_percentile():
    assert is_refusal("As an AI, I cannot comply.") and not is_refusal(GOOD)
    assert is_garbage("") and is_garbage("ok") and not is_garbage(GOOD)
    assert percentile([1, 2, 3, 4, 100], 95) == 100 and percentile([1, 2, 3, 4], 50) == 2
    assert len({p.prompt_id for p in CANARY_PROMPTS}) == len(CANARY_PROMPTS) >= 5
