"""The transformers runtime: a tiny GPT-2 model and tokenizer built here (no downloads),
pushed as a release, loaded through the verifying store and served; and a PEFT LoRA
adapter release served on top of its base release."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install 'airlock[hf]')")
transformers = pytest.importorskip("transformers", reason="transformers is not installed")

from airlock.config import Settings  # noqa: E402
from airlock.core.prompting import DecodingParams  # noqa: E402
from airlock.runtime.base import GenerationRequest  # noqa: E402
from airlock.runtime.loader import ReleaseLoader  # noqa: E402
from airlock.services.identity import Actor  # noqa: E402
from airlock.services.registry import Registry  # noqa: E402
from airlock.services.workspace import Workspace  # noqa: E402

ALICE = Actor("alice")
WORDS = [
    "the",
    "moon",
    "sun",
    "sea",
    "star",
    "sky",
    "is",
    "bright",
    "dark",
    "and",
    "over",
    "a",
    "quiet",
    "night",
    "light",
]


def _tiny_gpt2(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>", pad_token="<eos>"
    )
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=len(vocab),
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=1,
        eos_token_id=1,
    )
    model = transformers.GPT2LMHeadModel(config)
    model.save_pretrained(folder, safe_serialization=True)


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"), create=True)
    try:
        yield Registry(ws)
    finally:
        ws.close()


def _loader(registry: Registry, tmp_path: Path) -> ReleaseLoader:
    def resolve(ref: str) -> tuple[str, Any]:
        row = registry.resolve(ref)
        return row.ref, row.digest

    return ReleaseLoader(registry.store, resolve, scratch_dir=tmp_path)


def _request(max_tokens: int = 6) -> GenerationRequest:
    params = DecodingParams(temperature=0.0, top_p=1.0, max_tokens=max_tokens, stop=(), seed=0)
    return GenerationRequest(kind="completion", prompt="the moon is", params=params)


async def _run(loaded: Any) -> tuple[str, str, int]:
    whole = await loaded.runtime.generate(_request())
    streamed = "".join([d.text async for d in loaded.runtime.stream(_request())])
    return whole.text, streamed, whole.completion_tokens


def test_a_hugging_face_folder_is_served(registry: Registry, tmp_path: Path) -> None:
    folder = tmp_path / "tiny-gpt2"
    _tiny_gpt2(folder)
    ref = registry.push(folder, name="tiny", version="1.0.0", actor=ALICE).ref
    loaded = _loader(registry, tmp_path).load(ref)
    try:
        assert loaded.runtime_kind == "transformers"
        whole, streamed, n = asyncio.run(_run(loaded))
        assert 1 <= n <= 6
        assert whole.split() and set(whole.split()) <= set(WORDS) | {"<unk>"}
        assert streamed.split() == whole.split()  # greedy: the stream says the same
    finally:
        asyncio.run(loaded.aclose())
    assert not any(p.name.startswith("airlock-hf-") for p in tmp_path.iterdir())


@pytest.mark.filterwarnings("ignore::FutureWarning")  # peft <-> transformers deprecations
def test_a_lora_adapter_release_is_served_on_its_base(registry: Registry, tmp_path: Path) -> None:
    peft = pytest.importorskip("peft", reason="peft is not installed")
    base_dir = tmp_path / "base"
    _tiny_gpt2(base_dir)
    base = registry.push(base_dir, name="tiny", version="1.0.0", actor=ALICE).ref

    model = transformers.GPT2LMHeadModel.from_pretrained(base_dir)
    lora = peft.get_peft_model(
        model,
        peft.LoraConfig(
            r=4, lora_alpha=32, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True
        ),
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:  # B starts at zero (a no-op adapter): give it weights
                param.normal_(0.0, 2.0)
    adapter_dir = tmp_path / "adapter"
    lora.save_pretrained(adapter_dir, safe_serialization=True)
    adapted = registry.push(
        adapter_dir,
        name="tiny-lora",
        version="1.0.0",
        actor=ALICE,
        components={"base_model": base},
    ).ref

    loader = _loader(registry, tmp_path)
    plain, tuned = loader.load(base), loader.load(adapted)
    try:
        assert tuned.runtime_kind == "transformers"
        base_text, _, _ = asyncio.run(_run(plain))
        tuned_text, tuned_stream, _ = asyncio.run(_run(tuned))
        assert tuned_stream.split() == tuned_text.split()
        assert tuned_text != base_text  # the adapter changes what the model says
    finally:
        asyncio.run(plain.aclose())
        asyncio.run(tuned.aclose())
