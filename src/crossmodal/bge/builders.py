"""Seeded random-init Visualized-BGE and BGE-M3 models in the released file layouts.

* :func:`build_visualized` writes a directory like a user's Visualized-BGE
  download: ``Visualized_base_en_v1.5.pth`` (or ``Visualized_m3.pth``) beside a
  BGE text model's ``config.json`` and tokenizer files. The widths are the real
  ones (the fused sequence puts EVA tokens into the text model's embedding
  space, so neither can shrink); "tiny" cuts the depth: 2 EVA blocks and 2 text
  layers by default.
* :func:`build_m3` writes a BGE-M3 directory: an XLM-RoBERTa model
  (``config.json``, ``model.safetensors``), its SentencePiece tokenizer, and the
  ``colbert_linear.pt`` / ``sparse_linear.pt`` heads, at tiny widths.

Every tensor is drawn from one seeded generator in name order (LayerNorm gains
around 1, biases, including EVA's q/v biases, non-zero, weights scaled by their
fan-in), so a swapped or missing tensor changes the vectors. The tokenizers
have real vocabularies: English words and Chinese characters (WordPiece for
bge-base-en-v1.5, a SentencePiece unigram model trained on :data:`CORPUS` for
XLM-R), plus the words of any ``corpus`` passed in. Needs the ``torch`` extra.
:mod:`crossmodal.testing.bge` binds them to the test suite's caption corpus.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CORPUS", "VISUALIZED_VARIANTS", "build_m3", "build_visualized", "rope_tables", "write_wordpiece_tokenizer",
           "write_xlmr_tokenizer"]

ENGLISH = (
    "A cat sitting on a wooden chair.", "Two dogs running in the snow.", "The Eiffel tower at night.",
    "Boats on a quiet lake in the morning.", "A birthday cake with candles on the table.",
    "A black cat sleeping on a chair.", "A bee on a yellow flower.", "Many books on a shelf.",
    "A chess board with rocks on it.", "A parrot looks into the camera.", "A dragon flies over the mountains.",
    "A whale swims in the deep blue sea.", "A red circle and a blue square.", "A green triangle drawn on white paper.",
    "I like to walk in the park.", "The weather is nice and sunny today.", "He drinks a cup of coffee every morning.",
    "An astronaut stands on the moon.", "The rocket is ready for launch.", "A man rides a motorcycle down the street.",
    "A horse eats grass in the field.", "There are many cars on the city street.", "A big tree on the hill.",
    "The river view is beautiful at dusk.", "Children play with sand on the beach.",
    "The sky is orange in the evening.", "This camera lens is expensive.",
    "Fresh fruit and vegetables in the kitchen.", "The teacher gives a lesson in the classroom.",
    "Let us go and watch a movie together.", "A duck is swimming in the pond.", "A magpie stands on a branch.",
    "Kookaburras sit on an old tree.", "She wears a long red dress.", "The library is very quiet.",
    "A train passes over the bridge.", "It is cold when it snows in winter.", "Flowers bloom everywhere in spring.",
    "A cup of hot tea on the desk.", "Search for images and texts with one model.",
    "Vector search puts texts and images in the same space.", "What is the capital of France?",
    "Paris is the capital of France.", "Where is the nearest train station?", "Thank you very much for your help!",
    "The quick brown fox jumps over the lazy dog.", "A photo of a small black kitty.",
    "Please open the window, it is too hot in here.", "My phone number is 555 0123.", "We met at 10:30 on Monday.",
)
CHINESE = (
    "一只猫坐在木椅子上。", "两只狗在雪地里奔跑。", "夜晚的埃菲尔铁塔灯火通明。", "清晨，湖上有几条小船。",
    "桌子上放着一个插着蜡烛的生日蛋糕。", "一只黑猫睡在椅子上。", "一只蜜蜂停在黄色的花上。", "书架上有很多书。",
    "国际象棋的棋盘上放着石头。", "一只鹦鹉看着镜头。", "一条龙飞过高山。", "一头鲸鱼在深蓝色的大海里游泳。",
    "红色的圆形和蓝色的方形。", "白纸上画着一个绿色的三角形。", "我喜欢在公园里散步。", "今天天气很好，阳光明媚。",
    "他每天早上喝一杯咖啡。", "宇航员站在月球上。", "火箭准备发射了。", "一个人骑着摩托车在街上行驶。",
    "马在草地上吃草。", "城市的街道上有很多汽车。", "山上有一棵大树。", "黄昏时河边的风景很美。",
    "孩子们在海滩上玩沙子。", "傍晚的天空是橙色的。", "这台相机的镜头很贵。", "厨房里有新鲜的水果和蔬菜。",
    "老师在教室里讲课。", "我们一起去看电影吧。", "鸭子在池塘里游泳。", "喜鹊站在树枝上。",
    "她穿着一条红色的长裙。", "图书馆里非常安静。", "火车从桥上经过。", "冬天下雪的时候很冷。",
    "春天到了，到处都开着花。", "桌子上有一杯热茶。", "用一个模型搜索图片和文字。", "向量检索把文本和图像放在同一个空间里。",
    "法国的首都是哪里？", "巴黎是法国的首都。", "最近的火车站在哪里？", "非常感谢你的帮助！", "一张小黑猫的照片。",
    "请打开窗户，这里太热了。", "中国的长城非常有名。", "北京和上海都是大城市。", "我们星期一上午十点见面。",
    "这是一个关于人工智能的问题。",
)
#: about 400 of the most frequent Chinese characters, so everyday text outside the sentences above tokenizes too
COMMON_CHARACTERS = (
    "的一是不了人我在有他这为之大来以个中上们到说国和地也子时道出而要于就下得可你年生自会那后能对着事其里所去行过家十用发"
    "天如然作方成者多日都三小军二无同么经法当起与好看学进种将还分此心前面又定见只主没公从已知本意现想开手身问全高水"
    "长明美样工实力气理头两些正新东西南北白色黑红绿蓝黄花草树木山川河海湖鱼鸟猫狗马牛羊龙鲸虫月星云雨雪风光电车船"
    "飞机路街城市村店吃喝饭茶菜果米面书读写字画图片照相机门窗桌椅床房屋楼口眼耳鼻脸毛脚父母儿女男朋友老师同学医生"
    "早晚今明昨春夏秋冬热冷快慢远近左右买卖钱少最很太真再因所以但如果虽然还是或者每次第几百千万零四五六七八九"
)
#: the text the tiny tokenizers are built from: English and Chinese sentences on everyday subjects
CORPUS: tuple[str, ...] = ENGLISH + CHINESE + (COMMON_CHARACTERS,)

_CJK_PUNCTUATION = "，。！？、：；“”‘’（）《》【】…"


@dataclass(frozen=True)
class _Eva:
    width: int
    patch: int
    grid: int
    mlp: int
    head_dim: int
    embed_dim: int  # the CLIP head's output width (never used by Visualized-BGE, but in the checkpoint)


@dataclass(frozen=True)
class _Variant:
    weights_file: str
    text: Mapping[str, Any]
    eva: _Eva


VISUALIZED_VARIANTS: dict[str, _Variant] = {
    # bge-base-en-v1.5 + EVA02-CLIP-B-16
    "base-en": _Variant(
        "Visualized_base_en_v1.5.pth",
        {"model_type": "bert", "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
         "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0},
        _Eva(width=768, patch=16, grid=14, mlp=2048, head_dim=64, embed_dim=512),
    ),
    # bge-m3 + EVA02-CLIP-L-14
    "m3": _Variant(
        "Visualized_m3.pth",
        {"model_type": "xlm-roberta", "hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096,
         "max_position_embeddings": 8194, "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1,
         "bos_token_id": 0, "eos_token_id": 2},
        _Eva(width=1024, patch=14, grid=16, mlp=2730, head_dim=64, embed_dim=768),
    ),
}
M3_SIZES: dict[str, Mapping[str, Any]] = {
    "tiny": {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128, "num_hidden_layers": 2,
             "max_position_embeddings": 130},
    # the released width with one layer and a narrow MLP: for tests of what checks the catalog's 1024 dims
    "wide": {"hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 128, "num_hidden_layers": 1,
             "max_position_embeddings": 130},
    # the released widths, four layers: for benchmarks (the per-layer cost is the real one)
    "bench": {"hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096, "num_hidden_layers": 4,
              "max_position_embeddings": 8194},
    "base": {"hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096, "num_hidden_layers": 24,
             "max_position_embeddings": 8194},
}

_NORM_WEIGHT = re.compile(r".*(LayerNorm|norm\d?|_ln)\.weight")


def _english_words(corpus: Sequence[str] = ()) -> list[str]:
    words: dict[str, None] = {}
    for text in (*ENGLISH, *corpus):
        for word in re.findall(r"[a-z]+", text.lower()):
            words.setdefault(word, None)
    return list(words)


def _cjk_characters() -> list[str]:
    chars: dict[str, None] = {}
    for text in (*CHINESE, COMMON_CHARACTERS):
        for ch in text:
            if "\u4e00" <= ch <= "\u9fff":
                chars.setdefault(ch, None)
    for code in range(0x4E00, 0x4E00 + 1500):
        chars.setdefault(chr(code), None)
    return list(chars)


def wordpiece_vocab(corpus: Sequence[str] = ()) -> list[str]:
    """[PAD] [UNK] [CLS] [SEP] [MASK], ASCII, ##letters/digits, English words, CJK characters and punctuation."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    tokens += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    tokens += _english_words(corpus) + list(_CJK_PUNCTUATION) + _cjk_characters()
    return list(dict.fromkeys(tokens))


def write_wordpiece_tokenizer(out: Path, *, context_length: int = 512, corpus: Sequence[str] = ()) -> int:
    """A bge-base-en-v1.5-style tokenizer (lowercasing WordPiece) in ``out``; returns the vocabulary size."""
    from transformers import BertTokenizer

    vocab = wordpiece_vocab(corpus)
    out.mkdir(parents=True, exist_ok=True)
    # transformers 5 ignores vocab_file=...; the mapping itself must be passed.
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True, model_max_length=context_length)
    tok.save_pretrained(str(out))
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"cls_token": "[CLS]", "mask_token": "[MASK]", "pad_token": "[PAD]", "sep_token": "[SEP]", "unk_token": "[UNK]"}))
    return len(vocab)


def write_xlmr_tokenizer(out: Path, *, context_length: int = 8192, vocab_size: int = 1200,
                         corpus: Sequence[str] = ()) -> int:
    """An XLM-R-style tokenizer (SentencePiece unigram with NFKC, fairseq id layout) trained on :data:`CORPUS`."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb2
    from transformers import XLMRobertaTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter([*CORPUS, *corpus] * 2), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        character_coverage=1.0, hard_vocab_limit=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=3,
    )
    proto = pb2.ModelProto.FromString(model.getvalue())  # type: ignore[attr-defined]
    pieces = [(p.piece, float(p.score)) for p in proto.pieces]
    # XLM-R's ids: <s> <pad> </s> <unk>, then SentencePiece's own pieces after its <unk> <s> </s>, then <mask>.
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *pieces[3:], ("<mask>", 0.0)]
    out.mkdir(parents=True, exist_ok=True)
    tok = XLMRobertaTokenizer(vocab=vocab, _spm_precompiled_charsmap=proto.normalizer_spec.precompiled_charsmap,
                              model_max_length=context_length)
    tok.save_pretrained(str(out))
    (out / "sentencepiece.bpe.model").write_bytes(model.getvalue())
    (out / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": "<mask>", "pad_token": "<pad>",
         "sep_token": "</s>", "unk_token": "<unk>"}))
    return len(vocab)


def _randomize(state: dict[str, Any], seed: int, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name in sorted(state):
        t = state[name]
        if name in skip or not t.is_floating_point() or t.ndim == 0:
            out[name] = t.clone()
            continue
        noise = torch.randn(t.shape, generator=gen, dtype=torch.float32)
        if t.ndim == 1:
            value = 1.0 + 0.1 * noise if _NORM_WEIGHT.fullmatch(name) else 0.1 * noise
        elif "embeddings" in name or name.endswith(("cls_token", "pos_embed")):
            value = 0.5 * noise
        else:  # weights: unit-variance outputs for unit-variance inputs
            value = noise / float(t[0].numel()) ** 0.5
        out[name] = value.to(t.dtype)
    return out


def rope_tables(head_dim: int, grid: int, pretrained_grid: int = 16) -> tuple[Any, Any]:
    """EVA02's 2-D rotary cos/sin tables (grid*grid, head_dim), interpolated to ``grid``, in float32."""
    import torch

    dim = head_dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))
    t = torch.arange(grid) / grid * pretrained_grid
    axis = torch.einsum("i,f->if", t, freqs).repeat_interleave(2, dim=-1)  # (grid, dim): f0 f0 f1 f1 ...
    table = torch.cat((axis[:, None, :].expand(grid, grid, dim), axis[None, :, :].expand(grid, grid, dim)), dim=-1)
    table = table.reshape(-1, head_dim)
    return table.cos(), table.sin()


def _eva_state(eva: _Eva, depth: int) -> dict[str, Any]:
    import torch

    w, p = eva.width, "model_visual.visual."
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, w), "pos_embed": (1, eva.grid * eva.grid + 1, w),
        "patch_embed.proj.weight": (w, 3, eva.patch, eva.patch), "patch_embed.proj.bias": (w,),
        "norm.weight": (w,), "norm.bias": (w,), "head.weight": (eva.embed_dim, w), "head.bias": (eva.embed_dim,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({
            b + "norm1.weight": (w,), b + "norm1.bias": (w,), b + "norm2.weight": (w,), b + "norm2.bias": (w,),
            b + "attn.q_bias": (w,), b + "attn.v_bias": (w,), b + "attn.q_proj.weight": (w, w),
            b + "attn.k_proj.weight": (w, w), b + "attn.v_proj.weight": (w, w),
            b + "attn.inner_attn_ln.weight": (w,), b + "attn.inner_attn_ln.bias": (w,),
            b + "attn.proj.weight": (w, w), b + "attn.proj.bias": (w,),
            b + "mlp.w1.weight": (eva.mlp, w), b + "mlp.w1.bias": (eva.mlp,),
            b + "mlp.w2.weight": (eva.mlp, w), b + "mlp.w2.bias": (eva.mlp,),
            b + "mlp.ffn_ln.weight": (eva.mlp,), b + "mlp.ffn_ln.bias": (eva.mlp,),
            b + "mlp.w3.weight": (w, eva.mlp), b + "mlp.w3.bias": (w,),
        })
    state = {p + k: torch.zeros(s) for k, s in shapes.items()}
    cos, sin = rope_tables(eva.head_dim, eva.grid)
    for prefix in ["rope."] + [f"blocks.{i}.attn.rope." for i in range(depth)]:
        state[p + prefix + "freqs_cos"], state[p + prefix + "freqs_sin"] = cos.clone(), sin.clone()
    state["model_visual.logit_scale"] = torch.tensor(float(torch.log(torch.tensor(1 / 0.07))))
    return state


def _text_model(config: Any) -> Any:
    from transformers import AutoModel

    from ..runtimes.torch import quiet_transformers

    with quiet_transformers():
        return AutoModel.from_config(config)


def _text_config(text: Mapping[str, Any], vocab_size: int, layers: int) -> Any:
    from transformers import BertConfig, XLMRobertaConfig

    cls = BertConfig if text["model_type"] == "bert" else XLMRobertaConfig
    fields = {k: v for k, v in text.items() if k != "model_type"}
    return cls(**fields, vocab_size=vocab_size, num_hidden_layers=layers, hidden_act="gelu",
               architectures=["BertModel" if cls is BertConfig else "XLMRobertaModel"])


def build_visualized(out: str | Path, *, variant: str = "base-en", eva_depth: int = 2, text_layers: int = 2,
                     seed: int = 0, corpus: Sequence[str] = ()) -> Path:
    """Write a seeded random Visualized-BGE (``variant`` "base-en" or "m3") to ``out`` in the released layout."""
    import torch

    if variant not in VISUALIZED_VARIANTS:
        raise ValueError(f"unknown Visualized-BGE variant {variant!r}; expected one of {sorted(VISUALIZED_VARIANTS)}")
    spec = VISUALIZED_VARIANTS[variant]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if spec.text["model_type"] == "bert":
        vocab_size = write_wordpiece_tokenizer(out, context_length=spec.text["max_position_embeddings"], corpus=corpus)
    else:
        vocab_size = write_xlmr_tokenizer(out, context_length=spec.text["max_position_embeddings"] - 2, corpus=corpus)
    config = _text_config(spec.text, vocab_size, text_layers)
    config.save_pretrained(str(out))
    text = _text_model(config).state_dict()
    state: dict[str, Any] = {}
    for key, value in text.items():
        part, _, rest = key.partition(".")
        if part in ("embeddings", "encoder", "pooler") and not rest.endswith(("position_ids", "token_type_ids")):
            state[f"bge_{part}.{rest}"] = value
    state.update(_eva_state(spec.eva, eva_depth))
    state["visual_proj.weight"] = torch.zeros(spec.text["hidden_size"], spec.text["hidden_size"])
    state["visual_proj.bias"] = torch.zeros(spec.text["hidden_size"])
    rope = frozenset(k for k in state if ".freqs_" in k)
    torch.save(_randomize(state, seed, skip=rope), out / spec.weights_file)
    return out


def build_m3(out: str | Path, *, size: str = "tiny", seed: int = 0, heads: bool = True,
             corpus: Sequence[str] = ()) -> Path:
    """Write a seeded random BGE-M3 (XLM-RoBERTa + ColBERT and sparse heads) to ``out`` in the released layout."""
    import torch

    if size not in M3_SIZES:
        raise ValueError(f"unknown BGE-M3 size {size!r}; expected one of {sorted(M3_SIZES)}")
    dims = M3_SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab_size = write_xlmr_tokenizer(out, context_length=dims["max_position_embeddings"] - 2, corpus=corpus)
    text = {**VISUALIZED_VARIANTS["m3"].text, **{k: v for k, v in dims.items() if k != "num_hidden_layers"}}
    config = _text_config(text, vocab_size, dims["num_hidden_layers"])
    model = _text_model(config)
    state = model.state_dict()
    keep = {k: v for k, v in state.items() if not k.endswith(("position_ids", "token_type_ids"))}
    model.load_state_dict({**state, **_randomize(keep, seed)})
    from ..runtimes.torch import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(str(out), safe_serialization=True)
    if heads:
        h = dims["hidden_size"]
        linear = _randomize({"colbert.weight": torch.zeros(h, h), "colbert.bias": torch.zeros(h),
                             "sparse.weight": torch.zeros(1, h), "sparse.bias": torch.zeros(1)}, seed + 1)
        torch.save({"weight": linear["colbert.weight"], "bias": linear["colbert.bias"]}, out / "colbert_linear.pt")
        # Lexical weights of about 0.1-0.5, as the released model gives, rather than about 1.
        torch.save({"weight": 0.2 * linear["sparse.weight"], "bias": 0.2 * linear["sparse.bias"]}, out / "sparse_linear.pt")
    return out
