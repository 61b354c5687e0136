"""The premise of the demo's v1.3.0: a prompt template alone makes the built-in model evasive.

Same corpus, same weights, same decoding as v1.1.0; only the template differs. The
refusal check is the one the online scorer runs (:func:`looks_like_refusal`).
"""

from __future__ import annotations

from airlock.core.evalsuite import looks_like_refusal
from airlock.core.guardrails import parse_safety_policy
from airlock.core.prompting import parse_decoding_defaults, parse_prompt_template
from airlock.demo import scenario
from airlock.runtime.builtin_model import train


def release(version: str) -> scenario.ReleasePlan:
    return next(p for p in scenario.RELEASES if p.version == version)


def refusal_rate(plan: scenario.ReleasePlan) -> float:
    """The share of the demo's questions the release refuses, as its gateway would shape them."""
    model = train(scenario.corpus_text(plan.corpus), order=scenario.ORDER)
    template = parse_prompt_template(scenario.example_path(plan.template).read_text())
    decoding = parse_decoding_defaults(scenario.example_path("decoding.yaml").read_text())
    policy = parse_safety_policy(scenario.example_path("safety_policy.yaml").read_text())
    answers = [
        model.generate(
            template.render([{"role": "user", "content": question}]),
            temperature=decoding.temperature,
            top_p=decoding.top_p,
            max_tokens=32,
            stop=decoding.stop,
            seed=seed,
        ).text
        for question in scenario.QUESTIONS
        for seed in range(10)
    ]
    return sum(looks_like_refusal(a, policy.refusal) for a in answers) / len(answers)


def test_the_cautious_template_makes_the_same_weights_refuse_a_good_share_of_questions() -> None:
    v110, v130 = release("1.1.0"), release("1.3.0")
    assert (v130.corpus, v130.faults, v130.parent) == (v110.corpus, {}, v110.ref)
    assert v130.template != v110.template

    assert refusal_rate(v110) == 0.0
    assert 0.25 <= refusal_rate(v130) <= 0.6
